//! The terminal client: the real `dualkey` binary signs in with the dev identity provider's
//! device flow (the test plays the person at the verification page), then requests, lists,
//! approves and shows releases on a daemon that trusts that provider. Each person has their
//! own `XDG_CONFIG_HOME`, as two people on two laptops would.

#![cfg(unix)]

use crate::helpers::*;
use dualkey::mde::simulator::{DEV_API_AUDIENCE, DEV_API_SCOPE, SimulatorHandle};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const COMMENT: &str = "reimaged and scanned clean";

/// A daemon whose `[oidc]` and `[auth]` trust the simulator's dev identity provider, as
/// `spawn_console_app_with` sets them, but with a simulator that announces a device polling
/// interval of 0, so no login waits on real time.
async fn client_app() -> TestApp {
    let mut config = test_simulator();
    // The CLI is another process on real time: an interval of 0 keeps its polls from waiting.
    config.idp.device_interval = Duration::ZERO;
    spawn_console_app_on(config, |_| {}).await.app
}

/// One person's terminal: their own config directory (and home, so nothing reaches the real one).
struct Terminal {
    home: tempfile::TempDir,
    server: String,
}

/// What one run of the binary printed, and how it ended.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "the command failed: {self:?}");
        self
    }
}

impl Terminal {
    fn new(app: &TestApp) -> Self {
        Self { home: tempfile::tempdir().unwrap(), server: app.base.clone() }
    }

    fn credentials(&self) -> PathBuf {
        self.home.path().join("config/dualkey/credentials.json")
    }

    fn stored(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.credentials()).unwrap()).unwrap()
    }

    /// `dualkey ARGS` in this terminal, talking to the app (`DUALKEY_SERVER`).
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = dualkey_command();
        c.args(args)
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("DUALKEY_SERVER", &self.server)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut c = tokio::process::Command::from(c);
        c.kill_on_drop(true);
        c
    }

    async fn run(&self, args: &[&str]) -> Run {
        run(self.command(args)).await
    }

    /// `dualkey login`, signing in as `user` at the verification page when the code appears.
    async fn login(&self, sim: &SimulatorHandle, user: &str) -> Run {
        self.login_answering(sim, &[("user", user)]).await
    }

    async fn login_answering(&self, sim: &SimulatorHandle, answer: &[(&str, &str)]) -> Run {
        let mut child = self.command(&["login"]).spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut shown = String::new();
        let code = loop {
            let line = tokio::time::timeout(Duration::from_secs(30), stderr.next_line()).await.unwrap().unwrap();
            let line = line.unwrap_or_else(|| panic!("login ended without showing a code: {shown}"));
            shown.push_str(&line);
            shown.push('\n');
            if let Some(at) = line.find("enter the code ") {
                break line[at + "enter the code ".len()..].trim().to_string();
            }
        };
        assert!(shown.contains(&sim.devicelogin_url()), "the verification URL is shown: {shown}");
        let mut form = vec![("user_code", code.as_str())];
        form.extend_from_slice(answer);
        let page = reqwest::Client::new().post(sim.devicelogin_url()).form(&form).send().await.unwrap();
        assert!(page.status().is_success(), "the verification page took the answer: {}", page.status());
        let mut stdout = String::new();
        child.stdout.take().unwrap().read_to_string(&mut stdout).await.unwrap();
        while let Some(line) = stderr.next_line().await.unwrap() {
            shown.push_str(&line);
            shown.push('\n');
        }
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
        Run { code: status.code().unwrap_or(-1), stdout, stderr: shown }
    }
}

async fn run(mut cmd: tokio::process::Command) -> Run {
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.expect("the command ended").unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// An HS256 token the client app accepts (same issuer and audience as the dev IdP's).
fn automation_token(app: &TestApp, oid: &str, role: &str) -> String {
    app.token_with(json!({"oid": oid, "roles": [role], "iss": app.sim.idp_issuer(), "aud": DEV_API_AUDIENCE}))
}

#[tokio::test]
async fn login_runs_the_device_flow_and_stores_the_tokens_in_a_0600_file() {
    let app = client_app().await;
    let bob = Terminal::new(&app);
    let run = bob.login(&app.sim, "bob").await.ok();
    assert_eq!(run.stdout, "", "stdout stays clean: {run:?}");
    assert!(run.stderr.contains(&format!("Signed in to {} as bob (Release.Approve)", app.base)), "{}", run.stderr);
    assert_eq!(app.sim.idp_grants(DEVICE_GRANT), 1);

    let meta = std::fs::metadata(bob.credentials()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir = std::fs::metadata(bob.credentials().parent().unwrap()).unwrap();
    assert_eq!(dir.permissions().mode() & 0o777, 0o700);
    let stored = &bob.stored()[&app.base];
    assert!(stored["refresh_token"].as_str().is_some_and(|t| !t.is_empty()), "{stored}");
    assert!(stored["token_endpoint"].as_str().unwrap().ends_with("/oauth2/v2.0/token"), "{stored}");
    assert_eq!(stored["scope"], format!("{DEV_API_SCOPE} offline_access"));
    let token = stored["access_token"].as_str().unwrap();
    assert!(!run.stderr.contains(token), "the token is never printed");

    let who = bob.run(&["whoami"]).await.ok();
    assert!(who.stdout.contains("Principal   bob\n"), "{who:?}");
    assert!(who.stdout.contains("Roles       Release.Approve\n"), "{who:?}");
    assert!(who.stdout.contains("(in 59m)") || who.stdout.contains("(in 1h)"), "{who:?}");
    let who: Value = serde_json::from_str(&bob.run(&["whoami", "--output", "json"]).await.ok().stdout).unwrap();
    assert_eq!(who["principal"], "bob");
    assert_eq!(who["username"], "bob@dualkey.dev");
    assert_eq!(who["server"], app.base);
    assert_eq!(who["renewable"], true);
}

#[tokio::test]
async fn a_release_is_requested_listed_approved_and_shown_through_the_cli() {
    let app = client_app().await;
    let (alice, bob) = (Terminal::new(&app), Terminal::new(&app));
    alice.login(&app.sim, "alice").await.ok();
    bob.login(&app.sim, "bob").await.ok();

    let created =
        alice.run(&["releases", "request", &machine(1), "--comment", COMMENT, "--ticket", "INC-7"]).await.ok();
    let id = created.stdout.strip_suffix('\n').unwrap_or_else(|| panic!("{created:?}")).to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "request prints just the id: {created:?}");

    let queue = bob.run(&["releases", "list", "--waiting-for-me"]).await.ok();
    let lines: Vec<&str> = queue.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", queue.stdout);
    assert!(lines[0].starts_with("ID ") && lines[0].ends_with("REQUESTER  AGE"), "{}", queue.stdout);
    for cell in [id.as_str(), "host.contoso.com", "pending", "default", "0/1", "alice"] {
        assert!(lines[1].contains(cell), "{cell} missing from {}", queue.stdout);
    }
    let own = alice.run(&["releases", "list", "--waiting-for-me"]).await.ok();
    assert_eq!(own.stdout, "", "nothing waits for the requester: {own:?}");
    let mine: Value =
        serde_json::from_str(&alice.run(&["releases", "list", "--mine", "--output", "json"]).await.ok().stdout)
            .unwrap();
    assert_eq!(mine["items"][0]["id"], id.as_str());

    let approved = bob.run(&["releases", "approve", &id, "--comment", "checked the scan report"]).await.ok();
    assert!(approved.stdout.contains("Status        approved\n"), "{}", approved.stdout);
    assert!(approved.stdout.contains("Approvals     bob at "), "{}", approved.stdout);

    let shown = alice.run(&["releases", "show", &id]).await.ok();
    for line in [
        format!("Release       {id}\n"),
        "Status        approved\n".into(),
        format!("Device        host.contoso.com ({})\n", machine(1)),
        "Slots         Release.Approve 1 of 1: bob\n".into(),
        format!("Comment       {COMMENT}\n"),
        "Ticket        INC-7\n".into(),
    ] {
        assert!(shown.stdout.contains(&line), "{line:?} missing from\n{}", shown.stdout);
    }
    let json = alice.run(&["releases", "show", &id, "--output", "json"]).await.ok();
    let release: Value = serde_json::from_str(&json.stdout).expect("stdout is only JSON");
    assert_eq!(
        (release["status"].as_str(), release["approvals"][0]["approver"].as_str()),
        (Some("approved"), Some("bob"))
    );
    assert_eq!(json.stderr, "", "{json:?}");
}

#[tokio::test]
async fn an_access_token_the_server_finds_expired_is_refreshed_once_and_the_command_succeeds() {
    let app = client_app().await;
    let bob = Terminal::new(&app);
    bob.login(&app.sim, "bob").await.ok();
    let before = bob.stored()[&app.base].clone();
    // Past the dev IdP's 1 h access token lifetime on the daemon's clock; the stored expiry
    // (this machine's clock) has not passed, so only the server's 401 can start the refresh.
    app.clock.advance(Duration::from_secs(2 * 3600));
    let r = app.get("/api/v1/releases", before["access_token"].as_str().unwrap()).await;
    assert_eq!(error_code(r).await.1, "invalid_token", "the old token is refused now");

    let list = bob.run(&["releases", "list"]).await.ok();
    assert_eq!(list.stderr, "No releases match.\n", "{list:?}");
    assert_eq!(app.sim.idp_grants("refresh_token"), 1);
    let after = bob.stored()[&app.base].clone();
    assert_ne!(after["access_token"], before["access_token"]);
    assert_ne!(after["refresh_token"], before["refresh_token"], "the rotated refresh token is saved");
    assert_eq!(std::fs::metadata(bob.credentials()).unwrap().permissions().mode() & 0o777, 0o600);

    bob.run(&["releases", "list"]).await.ok();
    assert_eq!(app.sim.idp_grants("refresh_token"), 1, "the new token is used as it is");
}

#[tokio::test]
async fn a_stored_expiry_that_has_passed_is_renewed_before_the_call() {
    let app = client_app().await;
    let bob = Terminal::new(&app);
    bob.login(&app.sim, "bob").await.ok();
    let mut stored = bob.stored();
    stored[&app.base]["expires_at"] = "2020-01-01T00:00:00.000Z".into();
    std::fs::write(bob.credentials(), stored.to_string()).unwrap();

    bob.run(&["releases", "list"]).await.ok();
    assert_eq!(app.sim.idp_grants("refresh_token"), 1);
    let expires = bob.stored()[&app.base]["expires_at"].as_str().unwrap().to_string();
    assert!(expires.as_str() > "2026", "{expires}");
}

#[tokio::test]
async fn a_refused_dualkey_token_fails_with_the_api_code_and_never_falls_back_to_the_stored_login() {
    let app = client_app().await;
    let bob = Terminal::new(&app);
    bob.login(&app.sim, "bob").await.ok();
    let file = std::fs::read(bob.credentials()).unwrap();
    let expired = app.token_with(json!({"oid": "bob", "roles": [APPROVER], "iss": app.sim.idp_issuer(),
        "aud": DEV_API_AUDIENCE, "exp": time::OffsetDateTime::now_utc().unix_timestamp() - 3600}));

    let mut cmd = bob.command(&["releases", "list"]);
    cmd.env("DUALKEY_TOKEN", &expired);
    let refused = run(cmd).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert_eq!(refused.stdout, "");
    assert!(refused.stderr.starts_with("error: invalid_token: "), "{}", refused.stderr);
    assert!(!refused.stderr.contains(&expired), "the token is never printed");
    assert_eq!(app.sim.idp_grants("refresh_token"), 0, "no refresh was tried");
    assert_eq!(std::fs::read(bob.credentials()).unwrap(), file, "the stored login is untouched");
}

#[tokio::test]
async fn dualkey_token_with_dualkey_server_needs_no_login_and_writes_no_file() {
    let app = client_app().await;
    let robot = Terminal::new(&app);
    let mut cmd = robot.command(&["releases", "request", &machine(2), "--comment", COMMENT, "--output", "json"]);
    cmd.env("DUALKEY_TOKEN", automation_token(&app, "soar-robot", REQUESTER));
    let created = run(cmd).await.ok();
    let release: Value = serde_json::from_str(&created.stdout).expect("stdout is only JSON");
    assert_eq!(release["requested_by"], "soar-robot");
    assert_eq!(release["status"], "pending");
    assert!(!robot.credentials().parent().unwrap().exists(), "no credentials were needed or written");
}

#[tokio::test]
async fn errors_print_the_api_code_and_message_and_exit_non_zero() {
    let app = client_app().await;
    let alice = Terminal::new(&app);
    alice.login(&app.sim, "alice").await.ok();
    let id =
        alice.run(&["releases", "request", &machine(3), "--comment", COMMENT]).await.ok().stdout.trim().to_string();

    let own = alice.run(&["releases", "approve", &id]).await;
    assert_eq!((own.code, own.stdout.as_str()), (1, ""), "{own:?}");
    assert!(own.stderr.starts_with("error: self_approval_forbidden: "), "{}", own.stderr);
    assert!(own.stderr.trim_end().ends_with("(HTTP 403)"), "{}", own.stderr);
    let again = alice.run(&["releases", "request", &machine(3), "--comment", COMMENT]).await;
    assert!(again.stderr.starts_with("error: release_already_open: "), "{again:?}");
    let missing = alice.run(&["releases", "show", "01939a7e-0000-7000-8000-000000000000", "--output", "json"]).await;
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.starts_with("error: release_not_found: "), "{missing:?}");
    assert_eq!(missing.stdout, "", "a failed --output json command prints no JSON");

    let mut nowhere = alice.command(&["releases", "list"]);
    nowhere.env_remove("DUALKEY_SERVER").env("XDG_CONFIG_HOME", alice.home.path().join("empty"));
    let usage = run(nowhere).await;
    assert_eq!(usage.code, 2, "no server known is a usage mistake: {usage:?}");
    assert!(usage.stderr.contains("--server"), "{usage:?}");
}

#[tokio::test]
async fn a_declined_sign_in_stops_login_with_a_clear_message_and_stores_nothing() {
    let app = client_app().await;
    let eve = Terminal::new(&app);
    let run = eve.login_answering(&app.sim, &[("deny", "1")]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("error: sign-in was declined at the identity provider (access_denied)"), "{run:?}");
    assert!(!eve.credentials().exists());
}

#[tokio::test]
async fn logout_forgets_the_server_and_later_commands_ask_for_a_login() {
    let app = client_app().await;
    let bob = Terminal::new(&app);
    bob.login(&app.sim, "bob").await.ok();
    let out = bob.run(&["logout"]).await.ok();
    assert!(out.stderr.contains(&format!("Signed out of {}", app.base)), "{out:?}");
    assert_eq!(bob.stored(), json!({}));
    let after = bob.run(&["releases", "list"]).await;
    assert_eq!(after.code, 1);
    assert!(after.stderr.contains(&format!("not signed in to {}: run `dualkey login", app.base)), "{after:?}");
}

#[test]
fn the_daemon_starts_in_a_shell_that_has_the_clients_variables_set() {
    let out = dualkey_command()
        .args(["policy", "check"])
        .env("DUALKEY_SERVER", "https://dualkey.example.com")
        .env("DUALKEY_TOKEN", "eyJhbGciOiJIUzI1NiJ9.e30.c2ln")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
