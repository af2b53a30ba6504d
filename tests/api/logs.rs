//! Logs: `[log] format = "json"` writes one JSON object per line, every answer carries the
//! request's id (the client's when valid, else a fresh one), which every log line and every
//! audit entry the request causes names; entries the worker writes name none. And with every
//! secret configured and a whole release driven through a real process, at debug, no secret
//! and no bearer token appears in anything it writes.

use crate::console_support::Person;
use crate::forward_support::HecReceiver;
use crate::helpers::*;
use crate::notify_support::{Answer, Receiver, whsec};
use crate::smtp_receiver::SmtpReceiver;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

const REQUEST_ID: &str = "x-request-id";

/// A real `dualkey serve` whose stdout and stderr are kept line by line.
struct Logged {
    daemon: Daemon,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    base: String,
}

fn keep_lines(from: impl Read + Send + 'static, into: &Arc<Mutex<Vec<String>>>) -> std::thread::JoinHandle<()> {
    let into = into.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(from).split(b'\n').map_while(Result::ok) {
            into.lock().unwrap().push(String::from_utf8_lossy(&line).into_owned());
        }
    })
}

impl Logged {
    /// Starts `cmd` (a `serve` listening on `addr`) and waits until it answers.
    async fn start(mut cmd: Command, addr: &str) -> Self {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let readers =
            vec![keep_lines(child.stdout.take().unwrap(), &lines), keep_lines(child.stderr.take().unwrap(), &lines)];
        let logged = Self { daemon: Daemon(child), lines, readers, base: format!("http://{addr}") };
        let http = reqwest::Client::new();
        let url = format!("{}/healthz", logged.base);
        eventually("the daemon to answer", async || http.get(&url).send().await.is_ok()).await;
        logged
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the process with SIGTERM (a clean exit) and returns every line it wrote.
    async fn stop(self) -> Vec<String> {
        let Logged { mut daemon, lines, readers, .. } = self;
        let term = Command::new("kill").args(["-TERM", &daemon.0.id().to_string()]).status().unwrap();
        assert!(term.success());
        let exit = tokio::task::spawn_blocking(move || {
            let exit = daemon.0.wait().unwrap();
            for r in readers {
                r.join().unwrap();
            }
            exit
        })
        .await
        .unwrap();
        assert!(exit.success(), "clean exit after SIGTERM: {exit:?}");
        lines.lock().unwrap().clone()
    }
}

/// Every line parsed as JSON, or a panic naming the first that is not.
fn parsed(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// The request id a JSON line names, in its innermost span or any enclosing one.
fn request_id_of(line: &Value) -> Option<&str> {
    let spans = line["spans"].as_array().into_iter().flatten().chain([&line["span"]]);
    spans.filter_map(|s| s["request_id"].as_str()).next()
}

fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or_default()
}

fn header(r: &reqwest::Response) -> String {
    r.headers().get(REQUEST_ID).expect("an X-Request-Id header").to_str().unwrap().to_string()
}

fn is_generated(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 7)
}

#[tokio::test]
async fn a_valid_request_id_is_echoed_and_recorded_in_the_audit_entries_the_request_causes() {
    let m = spawn_with_mde(quick_simulator(), |_| {}).await;
    let app = &m.app;
    let r = app
        .http
        .post(app.url("/api/v1/releases"))
        .bearer_auth(app.requester())
        .header(REQUEST_ID, "soar-run.4711_A-b")
        .json(&json!({"machine_id": SEEDED, "comment": "reimaged and scanned clean"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r), "soar-run.4711_A-b", "echoed as sent");
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();

    let r = app.approve(&id, &app.approver("bob")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let generated = header(&r);
    assert!(is_generated(&generated), "none sent: a fresh UUID v7, {generated}");
    m.drive_until(&id, "succeeded").await;

    let entries = app.audit().await;
    let of = |action: &str| entries.iter().find(|e| e["action"] == action).unwrap()["details"].clone();
    assert_eq!(of("release_requested")["request_id"], "soar-run.4711_A-b");
    assert_eq!(of("approval_recorded")["request_id"], generated);
    assert_eq!(of("release_approved")["request_id"], generated, "every entry the request caused");
    // The worker and start-up are no request: their entries name none.
    let system: Vec<&Value> = entries.iter().filter(|e| e["actor"] == "system:dualkey").collect();
    assert!(system.iter().any(|e| e["action"] == "dispatch_claimed"), "{entries:#?}");
    assert!(system.iter().all(|e| e["details"].get("request_id").is_none()), "{system:#?}");
    let report: Value = app.get("/api/v1/audit/verify", &app.auditor()).await.json().await.unwrap();
    assert_eq!(report["ok"], true, "the chain still verifies: {report}");
}

#[tokio::test]
async fn an_invalid_request_id_is_replaced_by_a_generated_one() {
    let app = spawn_app().await;
    let long = "a".repeat(129);
    for bad in ["", "two words", "../etc", "ü", "a;b", long.as_str()] {
        let r = app.http.get(app.url("/healthz")).header(REQUEST_ID, bad).send().await.unwrap();
        let id = header(&r);
        assert!(is_generated(&id), "{bad:?} was replaced by a fresh id, not {id}");
    }
    let longest = "b".repeat(128);
    let r = app.http.get(app.url("/healthz")).header(REQUEST_ID, &longest).send().await.unwrap();
    assert_eq!(header(&r), longest, "128 characters are still an id");
    let a = header(&app.http.get(app.url("/healthz")).send().await.unwrap());
    let b = header(&app.http.get(app.url("/healthz")).send().await.unwrap());
    assert_ne!(a, b, "a fresh id per request");
}

#[tokio::test]
async fn error_answers_and_console_pages_carry_the_request_id_too() {
    let app = spawn_app().await;
    let sent = |r: reqwest::RequestBuilder| async move { r.header(REQUEST_ID, "req-1").send().await.unwrap() };
    let cases = [
        (sent(app.http.get(app.url("/no/such/route"))).await, StatusCode::NOT_FOUND),
        (sent(app.http.get(app.url("/api/v1/releases"))).await, StatusCode::UNAUTHORIZED),
        (sent(app.http.delete(app.url("/api/v1/releases"))).await, StatusCode::METHOD_NOT_ALLOWED),
        (
            sent(app.http.post(app.url("/api/v1/releases")).bearer_auth(app.requester()).body("{not json")).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            sent(app.http.post(app.url("/api/v1/releases")).bearer_auth(app.requester()).json(&json!({"x": 1}))).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (sent(app.http.get(app.url("/ui/"))).await, StatusCode::OK),
    ];
    for (r, status) in cases {
        assert_eq!(r.status(), status, "{}", r.url());
        assert_eq!(header(&r), "req-1", "{status} from {}", r.url());
    }
}

#[tokio::test]
async fn json_log_lines_all_parse_and_those_of_a_request_carry_its_id() {
    let m = spawn_with_mde(quick_simulator(), |_| {}).await;
    let addr = free_loopback_addr();
    let mut cmd = m.serve_command(&m.app.config_path, &addr);
    cmd.env("DUALKEY_LOG__FORMAT", "json").env("DUALKEY_LOG__LEVEL", "debug");
    let daemon = Logged::start(cmd, &addr).await;
    let http = reqwest::Client::new();
    let r = http
        .post(daemon.url("/api/v1/releases"))
        .bearer_auth(m.app.requester())
        .header(REQUEST_ID, "given-id.1")
        .json(&json!({"machine_id": SEEDED, "comment": "reimaged and scanned clean"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r), "given-id.1");
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r = http
        .post(daemon.url(&format!("/api/v1/releases/{id}/approve")))
        .bearer_auth(m.app.approver("bob"))
        .header(REQUEST_ID, "not valid!")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let generated = header(&r);
    assert!(is_generated(&generated), "{generated}");
    let lines = parsed(&daemon.stop().await);

    for line in &lines {
        for key in ["timestamp", "level", "target", "fields"] {
            assert!(line.get(key).is_some(), "no `{key}`: {line}");
        }
        let level = line["level"].as_str().unwrap();
        let ours = line["target"].as_str().unwrap().starts_with("dualkey");
        assert!(ours || matches!(level, "WARN" | "ERROR"), "dependencies stay at warn: {line}");
    }
    let of = |rid: &str| lines.iter().filter(|l| request_id_of(l) == Some(rid)).collect::<Vec<_>>();
    let given = of("given-id.1");
    let messages: Vec<&str> = given.iter().map(|l| message(l)).collect();
    assert!(
        ["request received", "release requested", "request answered"].iter().all(|m| messages.contains(m)),
        "the request's own lines name its id: {messages:?}"
    );
    let answered = given.iter().find(|l| message(l) == "request answered").unwrap();
    assert_eq!(answered["fields"]["status"], 201);
    assert_eq!(answered["level"], "DEBUG", "routine per-request lines are debug");
    assert_eq!(answered["span"]["method"], "POST");
    assert_eq!(answered["span"]["path"], "\"/api/v1/releases\"", "the path as logsafe quotes it");
    let approved: Vec<&str> = of(&generated).iter().map(|l| message(l)).collect();
    assert!(approved.contains(&"release approved"), "the replaced id is the one logged: {approved:?}");
    assert!(of("not valid!").is_empty());
    let released = lines.iter().filter(|l| message(l) == "release requested").collect::<Vec<_>>();
    assert_eq!(released.len(), 1);
    assert_eq!(request_id_of(released[0]), Some("given-id.1"));
    assert!(lines.iter().any(|l| message(l) == "dualkey listening" && request_id_of(l).is_none()));
}

#[tokio::test]
async fn rust_log_replaces_the_log_level_entirely() {
    let m = spawn_with_mde(quick_simulator(), |_| {}).await;
    let addr = free_loopback_addr();
    let mut cmd = m.serve_command(&m.app.config_path, &addr);
    cmd.env("DUALKEY_LOG__FORMAT", "json").env("DUALKEY_LOG__LEVEL", "debug").env("RUST_LOG", "dualkey::startup=info");
    let daemon = Logged::start(cmd, &addr).await;
    let r = reqwest::Client::new().get(daemon.url("/api/v1/releases")).bearer_auth(m.app.auditor()).send().await;
    assert_eq!(r.unwrap().status(), StatusCode::OK);
    let lines = parsed(&daemon.stop().await);
    assert!(lines.iter().any(|l| message(l) == "dualkey listening"), "{lines:#?}");
    let others: Vec<&Value> = lines.iter().filter(|l| l["target"] != "dualkey::startup").collect();
    assert!(others.is_empty(), "only what RUST_LOG names: {others:#?}");
}

/// A 32-byte random value, base64url: unmistakable wherever it turns up.
fn random_secret(label: &str) -> String {
    use base64::Engine;
    format!("{label}-{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()))
}

#[tokio::test]
async fn no_secret_or_bearer_token_reaches_the_log_across_a_release_with_every_secret_configured() {
    let mde_secret = random_secret("mde");
    let oidc_secret = random_secret("oidc");
    let mut sim_config = quick_simulator();
    sim_config.client_secret = Some(dualkey::secret::Secret::new(&mde_secret));
    sim_config.idp.client_secret = Some(dualkey::secret::Secret::new(&oidc_secret));
    let m = spawn_with_mde(sim_config, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };

    // Every channel kind, each URL with a secret in it; the webhook refuses every attempt.
    let (teams, slack, hook) = (Receiver::start().await, Receiver::start().await, Receiver::start().await);
    hook.answer(std::iter::repeat_n(Answer::Status(500), 1000));
    let teams_url = format!("{}?sig={}", teams.url, random_secret("teams"));
    let slack_url = format!("{}?token={}", slack.url, random_secret("slack"));
    let hook_url = format!("{}?key={}", hook.url, random_secret("hook"));
    let signing = whsec();
    let smtp = SmtpReceiver::start().await;
    let (smtp_user, smtp_password) = (random_secret("smtpuser"), random_secret("smtppass"));
    let hec_token = uuid::Uuid::new_v4().to_string();
    let hec = HecReceiver::start(&hec_token).await;
    let (signing_key, _verifier) = crate::evidence_support::keygen(dir.path(), "dualkey-logs");
    let signing_key_text = std::fs::read_to_string(&signing_key).unwrap();
    let all = "\"release.requested\", \"release.approved\", \"release.succeeded\"";
    let extra = format!(
        "[oidc]\nissuer = \"{issuer}\"\nclient_id = \"{client}\"\nclient_secret_file = {oidc_file:?}\n\
         [notify]\nbackoff_base = \"50ms\"\nbackoff_max = \"100ms\"\n\
         [[notify.channels]]\nname = \"teams\"\nkind = \"teams\"\nurl_file = {teams_file:?}\n\
         [[notify.channels]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"{slack_url}\"\n\
         [[notify.channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl_file = {hook_file:?}\nsecret = \"{signing}\"\n\
         [[notify.channels]]\nname = \"mail\"\nkind = \"email\"\nsmtp_url = \"{smtp_url}\"\nfrom = \"dualkey@example.com\"\n\
         to = [\"soc@example.com\"]\nusername_file = {user_file:?}\npassword_file = {password_file:?}\n\
         [[notify.routes]]\nevents = [{all}]\nchannels = [\"teams\", \"slack\", \"hook\", \"mail\"]\n\
         [audit]\nsigning_key_file = {signing_key:?}\n\
         [[audit.forward]]\nname = \"splunk\"\nkind = \"http\"\nurl = \"{hec_url}\"\ntoken_file = {hec_file:?}\n\
         backoff_base = \"50ms\"\nbackoff_max = \"100ms\"\n",
        issuer = m.sim.idp_issuer(),
        client = dualkey::mde::simulator::DEV_APP_CLIENT_ID,
        oidc_file = file("oidc-secret", &oidc_secret),
        teams_file = file("teams-url", &teams_url),
        hook_file = file("hook-url", &hook_url),
        smtp_url = smtp.url(),
        user_file = file("smtp-user", &smtp_user),
        password_file = file("smtp-password", &smtp_password),
        hec_url = hec.url,
        hec_file = file("hec-token", &hec_token),
    );
    let config = file("dualkey.toml", &format!("{}{extra}", std::fs::read_to_string(&m.app.config_path).unwrap()));
    let addr = free_loopback_addr();
    let mut cmd = m.serve_command(&config, &addr);
    cmd.env("DUALKEY_MDE__CLIENT_SECRET", &mde_secret)
        .env("DUALKEY_MDE__WORKER_ENABLED", "true")
        .env("DUALKEY_MDE__SCAN_INTERVAL", "100ms")
        .env("DUALKEY_MDE__POLL_INTERVAL", "100ms")
        .env("DUALKEY_LOG__LEVEL", "debug");
    let daemon = Logged::start(cmd, &addr).await;
    let http = reqwest::Client::new();

    // A person signs in to the console (the code exchange sends the OIDC client secret).
    let person = Person::at(&daemon.base);
    let r = person.sign_in("alice", "/ui/").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap_or_default());
    let session: Vec<String> =
        ["__Host-dualkey_session", "dualkey_session"].iter().filter_map(|c| person.cookie(c)).collect();
    assert_eq!(session.len(), 1, "a session cookie");

    // Failures: a forged token, a bad body, a token from an unknown issuer.
    let forged = format!("{}.{}", m.app.requester(), random_secret("sig"));
    let (requester, approver, auditor) = (m.app.requester(), m.app.approver("bob"), m.app.auditor());
    let foreign = {
        let mut claims = json!({"sub": "mallory", "roles": [REQUESTER], "iss": "https://elsewhere.example"});
        claims["aud"] = json!(AUDIENCE);
        m.app.token_with(claims)
    };
    for token in [&forged, &foreign, &"not-a-jwt-but-secret".to_string()] {
        let r = http.get(daemon.url("/api/v1/releases")).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = http.post(daemon.url("/api/v1/releases")).bearer_auth(&requester).json(&json!({"machine_id": 7})).send();
    assert_eq!(r.await.unwrap().status(), StatusCode::UNPROCESSABLE_ENTITY);

    // The release: requested, approved, sent to MDE, succeeded.
    let r = http
        .post(daemon.url("/api/v1/releases"))
        .bearer_auth(&requester)
        .json(&json!({"machine_id": SEEDED, "comment": "reimaged and scanned clean"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r = http
        .post(daemon.url(&format!("/api/v1/releases/{id}/approve")))
        .bearer_auth(&approver)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The daemon fetches its MDE token and sends the action; the in-process worker, on the
    // simulator's clock, follows it to MDE's end (as in crash.rs: the scan that follows sends
    // is led by one replica, and the test's own worker is the one on the test's clock).
    eventually("the daemon to send the action", async || {
        let r = http.get(daemon.url(&format!("/api/v1/releases/{id}"))).bearer_auth(&auditor).send().await.unwrap();
        r.json::<Value>().await.unwrap()["status"] == "dispatched"
    })
    .await;
    m.drive_until(&id, "succeeded").await;
    eventually("every channel tried and the trail forwarded", async || {
        let delivered = |r: &Receiver| r.received().iter().filter(|m| m.status == 200).count();
        // Requested and approved: the daemon committed those, under its routes. The success is
        // committed by the test's worker, whose settings route nothing.
        delivered(&teams) >= 2
            && delivered(&slack) >= 2
            && hook.received().len() >= 2
            && !hec.accepted().is_empty()
            && {
                let r = http.get(daemon.url("/api/v1/notifications?limit=200")).bearer_auth(&auditor).send().await;
                let body: Value = r.unwrap().json().await.unwrap();
                let items = body["items"].as_array().unwrap().clone();
                items.iter().any(|n| n["channel"] == "mail" && n["attempts"].as_u64() >= Some(1))
            }
    })
    .await;
    let lines = daemon.stop().await;
    assert!(lines.iter().any(|l| l.contains("DEBUG")), "the daemon logged at debug");
    assert!(lines.iter().any(|l| l.contains("notification attempt failed")), "the failing webhook was logged");

    let mde_tokens = m.sim.issued_tokens();
    assert!(!mde_tokens.is_empty(), "the daemon fetched an MDE token");
    let signing_b64 = signing.strip_prefix("whsec_").unwrap().to_string();
    let key_lines: Vec<String> =
        signing_key_text.lines().map(str::trim).filter(|l| l.len() >= 16).map(str::to_string).collect();
    let mut secrets = vec![
        ("auth.hs256_secret", m.app.secret.clone()),
        ("mde.client_secret", mde_secret),
        ("oidc.client_secret", oidc_secret),
        ("teams url", teams_url),
        ("slack url", slack_url),
        ("webhook url", hook_url),
        ("webhook signing secret", signing_b64),
        ("smtp username", smtp_user),
        ("smtp password", smtp_password),
        ("hec token", hec_token),
        ("session cookie", session[0].clone()),
    ];
    secrets.extend(key_lines.into_iter().map(|l| ("audit signing key", l)));
    secrets.extend(mde_tokens.into_iter().map(|t| ("MDE access token", t)));
    for (name, token) in [("requester", requester), ("approver", approver), ("auditor", auditor), ("forged", forged)]
        .into_iter()
        .chain([("foreign", foreign)])
    {
        let signature = token.rsplit('.').next().unwrap().to_string();
        secrets.push((name, token));
        secrets.push((name, signature));
    }
    secrets.push(("a refused bearer token", "not-a-jwt-but-secret".into()));
    let log = lines.join("\n");
    for (name, secret) in &secrets {
        assert!(!log.contains(secret.as_str()), "the {name} appears in the log:\n{log}");
    }
    assert!(!log.to_ascii_lowercase().contains("bearer "), "no Authorization header in the log:\n{log}");
}
