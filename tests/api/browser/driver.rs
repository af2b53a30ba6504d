//! The `chromedriver` child process: started on a free loopback port, ready once `/status`
//! says so, killed when dropped. Sessions ([`Browser`]) hold it alive.

use super::webdriver::{Browser, WdError};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Debian's Chromium (a shell wrapper around /usr/lib/chromium/chromium).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's ChromeDriver, from the `chromium-driver` package.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long chromedriver may take to answer `/status` with `ready: true`.
const STARTUP_BOUND: Duration = Duration::from_secs(10);

/// Browser tests running at once: on two cores, more Chromiums beside the rest of the suite only
/// make each one slow enough to miss its waits.
static AT_ONCE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// A running chromedriver; each [`ChromeDriver::session`] is one person's browser.
#[derive(Clone)]
pub struct ChromeDriver {
    inner: Arc<Process>,
}

/// The child process and where its output goes; dropped after the last session.
pub(super) struct Process {
    pub(super) base: String,
    pub(super) addr: std::net::SocketAddr,
    pub(super) http: reqwest::Client,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
    /// Held while the test's browsers run.
    _turn: tokio::sync::SemaphorePermit<'static>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChromeDriver {
    /// Starts chromedriver on a free loopback port and waits (bounded) until it is ready. A port
    /// taken between choosing and binding it is retried with another, twice.
    pub async fn start() -> Result<Self, WdError> {
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once().await {
                Ok(driver) => return Ok(driver),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("three attempts"))
    }

    async fn start_once() -> Result<Self, WdError> {
        let turn = AT_ONCE.acquire().await.expect("the semaphore is never closed");
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("chromedriver.log");
        let addr: std::net::SocketAddr = crate::helpers::free_loopback_addr().parse().expect("a socket address");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={}", addr.port()))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).no_proxy().build()?;
        let mut process = Process { base: format!("http://{addr}"), addr, http, child, log, _dir: dir, _turn: turn };
        let deadline = Instant::now() + STARTUP_BOUND;
        loop {
            if let Some(status) = process.child.try_wait()? {
                return Err(WdError::Startup(format!("chromedriver exited ({status}): {}", process.log_text())));
            }
            if process.ready().await {
                return Ok(ChromeDriver { inner: Arc::new(process) });
            }
            if Instant::now() > deadline {
                return Err(WdError::Startup(format!(
                    "chromedriver not ready in {STARTUP_BOUND:?}: {}",
                    process.log_text()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A new WebDriver session: its own headless Chromium with its own profile directory, so
    /// two sessions share no cookies.
    pub async fn session(&self) -> Result<Browser, WdError> {
        let profile = tempfile::tempdir()?;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": {"implicit": 0, "pageLoad": 10_000, "script": 10_000},
            "goog:chromeOptions": {"binary": CHROMIUM, "args": chromium_args(profile.path())},
        }}});
        let r = self.inner.http.post(format!("{}/session", self.inner.base)).json(&capabilities).send().await?;
        let value = super::webdriver::unwrap_value("new session", r).await?;
        let id = value["sessionId"]
            .as_str()
            .ok_or_else(|| WdError::Protocol(format!("new session without a sessionId: {value}")))?;
        Ok(Browser::new(self.inner.clone(), id.to_string(), profile))
    }
}

impl Process {
    async fn ready(&self) -> bool {
        let Ok(r) = self.http.get(format!("{}/status", self.base)).send().await else { return false };
        r.json::<Value>().await.is_ok_and(|v| v["value"]["ready"] == true)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The flags this machine's Chromium needs: headless as root, and no connection of its own
/// anywhere (the machine's network is closed; without them Chromium tries Google's hosts).
fn chromium_args(profile: &Path) -> Vec<String> {
    let fixed = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        // A laptop-sized window, for the screenshot and for layouts that hide things when narrow.
        "--window-size=1280,900",
    ];
    let mut args: Vec<String> = fixed.iter().map(|s| s.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args
}

/// What a browser test does on this machine.
#[derive(Debug, PartialEq)]
pub enum Availability {
    Run,
    /// Not installed: the line to print before returning.
    Skip(String),
    /// Not installed, and under CI where a skipped browser test would hide a missing install.
    Fail(String),
}

/// Pure: whether test `test` runs, given whether both binaries are installed and `CI`'s value.
pub fn availability(test: &str, installed: bool, ci: Option<&str>) -> Availability {
    if installed {
        return Availability::Run;
    }
    let line =
        format!("skipped: {test}: chromium/chromedriver not installed (apt-get install chromium chromium-driver)");
    if ci.is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        Availability::Fail(format!("CI=true and {}", line.trim_start_matches("skipped: ")))
    } else {
        Availability::Skip(line)
    }
}

/// A started chromedriver, or `None` (after printing the skip line) when Chromium or
/// ChromeDriver is not installed. Panics instead under `CI=true`, or if chromedriver fails.
pub async fn chromedriver_or_skip(test: &str) -> Option<ChromeDriver> {
    let installed = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    match availability(test, installed, std::env::var("CI").ok().as_deref()) {
        Availability::Run => Some(ChromeDriver::start().await.expect("chromedriver starts")),
        Availability::Skip(line) => {
            println!("{line}");
            None
        }
        Availability::Fail(why) => panic!("{why}"),
    }
}

#[test]
fn a_browser_test_runs_when_installed_skips_when_not_and_fails_under_ci() {
    assert_eq!(availability("t", true, Some("true")), Availability::Run);
    assert_eq!(availability("t", true, None), Availability::Run);
    assert_eq!(
        availability("browser::t", false, None),
        Availability::Skip(
            "skipped: browser::t: chromium/chromedriver not installed (apt-get install chromium chromium-driver)"
                .into()
        )
    );
    assert!(matches!(availability("t", false, Some("false")), Availability::Skip(_)));
    assert!(matches!(availability("t", false, Some("true")), Availability::Fail(w) if w.contains("t: chromium")));
}
