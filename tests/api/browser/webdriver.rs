//! A minimal W3C WebDriver client over reqwest: sessions, navigation, elements, cookies,
//! scripts, screenshots and a bounded wait. Errors carry WebDriver's own error and message.

use super::driver::Process;
use super::element::Element;
use super::locate::By;
use base64::Engine;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The key W3C WebDriver puts an element reference under.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long [`Browser::wait_for`] waits on the browser (real time: the page's own timers).
pub const WAIT_BOUND: Duration = Duration::from_secs(10);

/// What went wrong talking to chromedriver.
#[derive(thiserror::Error)]
pub enum WdError {
    #[error("chromedriver: {0}")]
    Startup(String),
    #[error("{command}: WebDriver error `{error}` (HTTP {status}): {message}")]
    WebDriver { command: String, status: u16, error: String, message: String },
    #[error("WebDriver protocol: {0}")]
    Protocol(String),
    #[error("timed out after {bound:?} waiting for {what}; at {url}, the page source:\n{page_source}")]
    Timeout { what: String, bound: Duration, url: String, page_source: String },
    #[error("HTTP to chromedriver: {0}")]
    Http(#[from] reqwest::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

// `unwrap()` and `?` in a test print Debug: make that the readable message, page source included.
impl std::fmt::Debug for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl WdError {
    /// The element is not (or no longer) in the page: missing, stale, or (chromedriver's words
    /// for a node of a document navigated away from) "does not belong to the document".
    pub fn is_gone_element(&self) -> bool {
        matches!(self.code(), Some("no such element" | "stale element reference"))
            || (self.code() == Some("unknown error") && self.to_string().contains("does not belong to the document"))
    }

    /// The WebDriver error code (`no such element`, ...), if chromedriver answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            WdError::WebDriver { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A cookie as WebDriver describes it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Cookie {
    pub name: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<u64>,
}

/// One WebDriver session: one person's headless Chromium with its own profile. Deleted (and
/// Chromium closed) when dropped, before its profile directory is removed.
pub struct Browser {
    driver: Arc<Process>,
    id: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub(super) fn new(driver: Arc<Process>, id: String, profile: tempfile::TempDir) -> Browser {
        Browser { driver, id, _profile: profile }
    }

    async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, WdError> {
        let url = format!("{}/session/{}{path}", self.driver.base, self.id);
        let mut req = self.driver.http.request(method.clone(), url);
        if method == Method::POST {
            // chromedriver wants a JSON body on every POST, `{}` when there is nothing to say.
            req = req.json(&body.unwrap_or_else(|| json!({})));
        }
        unwrap_value(&format!("{method} {path}"), req.send().await?).await
    }

    pub(super) async fn get(&self, path: &str) -> Result<Value, WdError> {
        self.cmd(Method::GET, path, None).await
    }

    pub(super) async fn post(&self, path: &str, body: Value) -> Result<Value, WdError> {
        self.cmd(Method::POST, path, Some(body)).await
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) -> Result<(), WdError> {
        self.post("/url", json!({"url": url})).await.map(drop)
    }

    pub async fn current_url(&self) -> Result<String, WdError> {
        as_string("current URL", self.get("/url").await?)
    }

    pub async fn refresh(&self) -> Result<(), WdError> {
        self.post("/refresh", json!({})).await.map(drop)
    }

    pub async fn page_source(&self) -> Result<String, WdError> {
        as_string("page source", self.get("/source").await?)
    }

    /// The first element matching `by`; WebDriver's `no such element` when there is none.
    pub async fn find(&self, by: &By) -> Result<Element<'_>, WdError> {
        let v = self.post("/element", by.locator()).await?;
        Ok(Element::new(self, element_id(&v)?))
    }

    /// Every element matching `by` (possibly none).
    pub async fn find_all(&self, by: &By) -> Result<Vec<Element<'_>>, WdError> {
        let v = self.post("/elements", by.locator()).await?;
        let items = v.as_array().ok_or_else(|| WdError::Protocol(format!("elements: not a list: {v}")))?;
        items.iter().map(|e| Ok(Element::new(self, element_id(e)?))).collect()
    }

    /// Whether anything on the current page matches `by`.
    pub async fn exists(&self, by: &By) -> Result<bool, WdError> {
        Ok(!self.find_all(by).await?.is_empty())
    }

    pub async fn cookies(&self) -> Result<Vec<Cookie>, WdError> {
        serde_json::from_value(self.get("/cookie").await?).map_err(|e| WdError::Protocol(format!("cookies: {e}")))
    }

    /// The cookie named `name` visible to the current page, if any.
    pub async fn cookie(&self, name: &str) -> Result<Option<Cookie>, WdError> {
        Ok(self.cookies().await?.into_iter().find(|c| c.name == name))
    }

    /// Sets a cookie for the current page's domain (navigate there first).
    pub async fn add_cookie(&self, cookie: &Cookie) -> Result<(), WdError> {
        self.post("/cookie", json!({"cookie": cookie})).await.map(drop)
    }

    pub async fn delete_cookie(&self, name: &str) -> Result<(), WdError> {
        self.cmd(Method::DELETE, &format!("/cookie/{name}"), None).await.map(drop)
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page and returns what
    /// it returns. For reading the page, or leaving a marker on it, not for driving it.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, WdError> {
        self.post("/execute/sync", json!({"script": script, "args": args})).await
    }

    /// Saves a PNG of the viewport at `path`.
    pub async fn screenshot(&self, path: &Path) -> Result<(), WdError> {
        let b64 = as_string("screenshot", self.get("/screenshot").await?)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| WdError::Protocol(format!("screenshot: not base64: {e}")))?;
        std::fs::write(path, png)?;
        Ok(())
    }

    /// Polls `check` until it holds, for at most [`WAIT_BOUND`]; see [`Browser::wait_for_within`].
    pub async fn wait_for(&self, what: &str, check: impl AsyncFnMut() -> Result<bool, WdError>) -> Result<(), WdError> {
        self.wait_for_within(WAIT_BOUND, what, check).await
    }

    /// Polls `check` every 50 ms of real time until it holds. An element missing or gone stale
    /// meanwhile (the page navigated between finding it and reading it) counts as "not yet";
    /// other errors end the wait. Times out with the page source.
    pub async fn wait_for_within(
        &self,
        bound: Duration,
        what: &str,
        mut check: impl AsyncFnMut() -> Result<bool, WdError>,
    ) -> Result<(), WdError> {
        let deadline = Instant::now() + bound;
        loop {
            match check().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) if e.is_gone_element() => {}
                Err(e) => return Err(e),
            }
            if Instant::now() > deadline {
                let url = self.current_url().await.unwrap_or_else(|e| format!("<no URL: {e}>"));
                let page_source = self.page_source().await.unwrap_or_else(|e| format!("<no source: {e}>"));
                return Err(WdError::Timeout { what: what.to_string(), bound, url, page_source });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the element `by` exists and its text is `expected`.
    pub async fn wait_for_text(&self, by: &By, expected: &str) -> Result<(), WdError> {
        let what = format!("{by:?} to read {expected:?}");
        self.wait_for(&what, async || Ok(self.find(by).await?.text().await? == expected)).await
    }

    /// Waits until the current URL satisfies `pred`; returns it.
    pub async fn wait_for_url(&self, what: &str, pred: impl Fn(&str) -> bool) -> Result<String, WdError> {
        self.wait_for(what, async || Ok(pred(&self.current_url().await?))).await?;
        self.current_url().await
    }
}

impl Drop for Browser {
    // Drop cannot await: end the session with one blocking request, so Chromium quits (and lets
    // go of its profile directory) even when a test panics.
    fn drop(&mut self) {
        let _ = delete_session_blocking(self.driver.addr, &self.id);
    }
}

fn delete_session_blocking(addr: std::net::SocketAddr, id: &str) -> std::io::Result<()> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "DELETE /session/{id} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    // The answer comes once Chromium has quit: wait for all of it. chromedriver says
    // `Connection: close` but keeps the socket open, so read by Content-Length, not to the end.
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !response_complete(&answer) {
        match s.read(&mut buf)? {
            0 => break,
            n => answer.extend_from_slice(&buf[..n]),
        }
    }
    Ok(())
}

/// Whether `bytes` hold a whole HTTP response: the head, then as many bytes as it announces.
fn response_complete(bytes: &[u8]) -> bool {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let length = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok());
    bytes.len() >= end + 4 + length.unwrap_or(0)
}

/// The `value` of a WebDriver answer, or its error as [`WdError::WebDriver`].
pub(super) async fn unwrap_value(command: &str, r: reqwest::Response) -> Result<Value, WdError> {
    let status = r.status();
    let text = r.text().await?;
    let body: Value = serde_json::from_str(&text)
        .map_err(|e| WdError::Protocol(format!("{command}: HTTP {status}, not JSON ({e}): {text}")))?;
    let value = body.get("value").cloned().unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(value);
    }
    let field = |k: &str| value[k].as_str().unwrap_or("<none>").to_string();
    Err(WdError::WebDriver {
        command: command.to_string(),
        status: status.as_u16(),
        error: field("error"),
        message: field("message"),
    })
}

fn element_id(v: &Value) -> Result<String, WdError> {
    v[ELEMENT_KEY].as_str().map(str::to_string).ok_or_else(|| WdError::Protocol(format!("not an element: {v}")))
}

pub(super) fn as_string(what: &str, v: Value) -> Result<String, WdError> {
    v.as_str().map(str::to_string).ok_or_else(|| WdError::Protocol(format!("{what}: not a string: {v}")))
}

#[test]
fn a_response_is_complete_once_its_announced_body_has_arrived() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Length:14\r\nConnection:close\r\n\r\n";
    assert!(!response_complete(&head[..20]));
    assert!(!response_complete(head));
    assert!(response_complete(&[&head[..], b"{\"value\":null}"].concat()));
    assert!(response_complete(b"HTTP/1.1 204 No Content\r\n\r\n"));
}
