//! What each client subcommand does: gather the server, the bearer and the store, make the
//! calls, print the answer on stdout (and everything else on stderr).

use super::args::{ClientCommand, Connection, Output, ReleasesCommand};
use super::credentials::{Store, Token};
use super::identity::Identity;
use super::output::{details, table};
use super::release::Release;
use super::session::{Session, pick_server};
use super::{ClientError, device, oidc};
use crate::clock::{Clock, SystemClock};
use reqwest::Method;
use serde::Deserialize as _;
use serde_json::{Map, Value, json};
use std::io::Write;

/// The environment variable holding a bearer token for automation.
const TOKEN_VAR: &str = "DUALKEY_TOKEN";

/// What every command reads from its environment.
struct Context {
    /// Where sign-ins are kept; an error only matters to a command that needs the file.
    store: Result<Store, ClientError>,
    env_token: Option<Token>,
    clock: SystemClock,
}

impl Context {
    fn from_env() -> Result<Self, ClientError> {
        let env_token = match std::env::var(TOKEN_VAR) {
            Ok(t) if t.trim().is_empty() => None,
            Ok(t) => Some(Token::new(t.trim())),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(ClientError::Usage(format!("{TOKEN_VAR} is not valid text")));
            }
        };
        Ok(Self { store: Store::from_env(|k| std::env::var_os(k)), env_token, clock: SystemClock })
    }

    fn store(&self) -> Result<&Store, ClientError> {
        self.store.as_ref().map_err(Clone::clone)
    }

    fn server(&self, conn: &Connection) -> Result<String, ClientError> {
        pick_server(conn.server.as_deref(), || self.store()?.load())
    }

    /// A session for the command's server; with `DUALKEY_TOKEN` and a named server the
    /// credentials file is never read.
    fn session(&self, conn: &Connection) -> Result<Session<'_>, ClientError> {
        Session::open(self.server(conn)?, self.env_token.clone(), self.store(), &self.clock)
    }
}

pub(super) async fn run(command: ClientCommand) -> Result<(), ClientError> {
    let ctx = Context::from_env()?;
    match command {
        ClientCommand::Login { conn } => login(&ctx, &conn).await,
        ClientCommand::Logout { conn } => logout(&ctx, &conn),
        ClientCommand::Whoami { conn } => whoami(&ctx, &conn),
        ClientCommand::Releases { conn, command } => releases(&ctx, &conn, command).await,
        ClientCommand::Evidence { conn, command } => super::evidence::run(&conn, command, || ctx.session(&conn)).await,
    }
}

/// `login`: the server's client-config, discovery, the device flow for `{api_scope}
/// offline_access`, and the tokens saved under the server's URL.
async fn login(ctx: &Context, conn: &Connection) -> Result<(), ClientError> {
    let server = ctx.server(conn)?;
    let store = ctx.store()?;
    // A credentials file that cannot be read would only fail after the person has signed in.
    store.load()?;
    let http = oidc::http_client()?;
    let config = oidc::client_config(&http, &server).await?;
    let api_scope = config.api_scope.as_deref().filter(|s| !s.trim().is_empty()).ok_or_else(|| {
        ClientError::other(format!(
            "{server} has no oidc.api_scope, so the terminal client cannot ask for a token it accepts; ask its operator to set it"
        ))
    })?;
    let provider = oidc::discover(&http, &config.issuer).await?;
    // Entra issues a refresh token only when offline_access is asked for.
    let scope = format!("{api_scope} offline_access");
    let mut stderr = std::io::stderr();
    let tokens = device::sign_in(&http, &ctx.clock, &provider, &config.cli_client_id, &scope, &mut stderr).await?;
    let login =
        tokens.into_login(ctx.clock.now(), &provider.token_endpoint, &provider.issuer, &config.cli_client_id, &scope);
    let renewable = login.refresh_token.is_some();
    let who = Identity::of_token(&server, login.access_token.expose(), Some(login.expires_at), "login", renewable);
    store.update(|c| c.insert(&server, login))?;
    let name = who.principal.as_deref().or(who.username.as_deref()).unwrap_or("(unknown)");
    eprintln!(
        "Signed in to {server} as {} ({}).",
        super::output::clean(name),
        super::output::clean(&who.roles.join(", "))
    );
    eprintln!("Credentials saved in {}.", store.path().display());
    if !renewable {
        eprintln!("The identity provider issued no refresh token: run `dualkey login` again when this one expires.");
    }
    if ctx.env_token.is_some() {
        eprintln!("Note: {TOKEN_VAR} is set, so commands use it instead of this sign-in until you unset it.");
    }
    match conn.output {
        Output::Json => print_json(&serde_json::to_value(&who).map_err(|e| ClientError::other(e.to_string()))?),
        Output::Table => Ok(()),
    }
}

/// `logout`: forgets the server's tokens (the identity provider's session is not ended).
fn logout(ctx: &Context, conn: &Connection) -> Result<(), ClientError> {
    let server = ctx.server(conn)?;
    let store = ctx.store()?;
    let removed = store.update(|c| c.remove(&server))?;
    if removed {
        eprintln!("Signed out of {server}: its tokens are removed from {}.", store.path().display());
    } else {
        eprintln!("Not signed in to {server}; nothing to remove.");
    }
    match conn.output {
        Output::Json => print_json(&json!({"server": server, "signed_out": removed})),
        Output::Table => Ok(()),
    }
}

/// `whoami`: what the token this command would send says, without calling the server.
fn whoami(ctx: &Context, conn: &Connection) -> Result<(), ClientError> {
    let server = ctx.server(conn)?;
    let who = match &ctx.env_token {
        Some(token) => Identity::of_token(&server, token.expose(), None, TOKEN_VAR, false),
        None => {
            let creds = ctx.store()?.load()?;
            let login = creds.get(&server).ok_or_else(|| {
                ClientError::other(format!("not signed in to {server}: run `dualkey login --server {server}`"))
            })?;
            let renewable = login.refresh_token.is_some();
            Identity::of_token(&server, login.access_token.expose(), Some(login.expires_at), "login", renewable)
        }
    };
    match conn.output {
        Output::Json => print_json(&serde_json::to_value(&who).map_err(|e| ClientError::other(e.to_string()))?),
        Output::Table => print(&who.render(ctx.clock.now())),
    }
}

async fn releases(ctx: &Context, conn: &Connection, command: ReleasesCommand) -> Result<(), ClientError> {
    let mut s = ctx.session(conn)?;
    let (get, post) = (Method::GET, Method::POST);
    let release = match command {
        ReleasesCommand::List { status, waiting_for_me, mine, limit } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(status.map(|s| ("status", s)));
            query.extend(waiting_for_me.then(|| ("waiting_for_me", "true".to_string())));
            query.extend(mine.then(|| ("mine", "true".to_string())));
            let page = s.call(get, &["releases"], &query, None).await?;
            return print_page(conn.output, &page, ctx.clock.now());
        }
        ReleasesCommand::Show { id } => s.call(get, &["releases", &id], &[], None).await?,
        ReleasesCommand::Request { machine, comment, ticket, break_glass } => {
            let mut body = Map::new();
            body.insert("machine_id".into(), machine.into());
            body.insert("comment".into(), comment.into());
            if let Some(t) = ticket {
                body.insert("ticket".into(), t.into());
            }
            if break_glass {
                body.insert("break_glass".into(), true.into());
            }
            let created = s.call(post, &["releases"], &[], Some(&Value::Object(body))).await?;
            return match conn.output {
                Output::Json => print_json(&created),
                Output::Table => print(&format!("{}\n", super::output::clean(created["id"].as_str().unwrap_or("")))),
            };
        }
        ReleasesCommand::Approve { id, comment } => {
            let body = comment.map_or_else(|| json!({}), |c| json!({ "comment": c }));
            s.call(post, &["releases", &id, "approve"], &[], Some(&body)).await?
        }
        ReleasesCommand::Reject { id, comment } => {
            s.call(post, &["releases", &id, "reject"], &[], Some(&json!({ "comment": comment }))).await?
        }
        ReleasesCommand::Cancel { id } => s.call(post, &["releases", &id, "cancel"], &[], Some(&json!({}))).await?,
    };
    match conn.output {
        Output::Json => print_json(&release),
        Output::Table => print(&details(&parse_release(&release)?, ctx.clock.now())),
    }
}

fn print_page(output: Output, page: &Value, now: crate::clock::Timestamp) -> Result<(), ClientError> {
    if output == Output::Json {
        return print_json(page);
    }
    let items = page["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    let releases = items.iter().map(parse_release).collect::<Result<Vec<_>, _>>()?;
    if releases.is_empty() {
        eprintln!("No releases match.");
    } else {
        print(&table(&releases, now))?;
    }
    if !page["next_cursor"].is_null() {
        eprintln!("More releases are older than these: raise --limit (up to 200) or narrow with --status.");
    }
    Ok(())
}

fn parse_release(v: &Value) -> Result<Release, ClientError> {
    Release::deserialize(v)
        .map_err(|e| ClientError::other(format!("the server sent a release that cannot be read: {e}")))
}

fn print_json(v: &Value) -> Result<(), ClientError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| ClientError::other(e.to_string()))?;
    print(&format!("{text}\n"))
}

fn print(text: &str) -> Result<(), ClientError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| ClientError::other(format!("cannot write the answer: {e}")))
}
