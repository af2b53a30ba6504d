//! Every way a Defender call can fail, and the one place that says which are worth retrying.

use std::time::Duration;

use super::rate::Api;
use super::types::MdeErrorBody;

/// The error code MDE gives a second isolate/unisolate while one is still Pending/InProgress.
pub const ACTIVE_REQUEST_ALREADY_EXISTS: &str = "ActiveRequestAlreadyExists";

/// A failed call to MDE or its token endpoint. `Display` never contains a token or secret:
/// it shows status, MDE's error code and message, or the transport failure.
#[derive(Debug, thiserror::Error)]
pub enum MdeError {
    /// MDE answered with a status other than the expected success.
    #[error("MDE {api:?} answered {status}: {} ({})", .code.as_deref().unwrap_or("no code"), .message.as_deref().unwrap_or("no message"))]
    Api {
        api: Api,
        status: u16,
        code: Option<String>,
        message: Option<String>,
        /// The `Retry-After` header in seconds, when present and numeric.
        retry_after: Option<Duration>,
    },
    /// 400 `ActiveRequestAlreadyExists`: an isolate/unisolate for this machine is still
    /// running. Never retry blindly: list the machine's actions and adopt the existing one.
    #[error("MDE {api:?} answered 400 ActiveRequestAlreadyExists: {}", .message.as_deref().unwrap_or("no message"))]
    ActiveRequestAlreadyExists { api: Api, message: Option<String> },
    /// The token endpoint refused or failed (`error` and `error_description` from Entra).
    #[error("token endpoint answered {status}: {} ({})", .error.as_deref().unwrap_or("no error code"), .description.as_deref().unwrap_or("no description"))]
    Token { status: u16, error: Option<String>, description: Option<String>, retry_after: Option<Duration> },
    /// No HTTP answer: connection refused, reset or dropped, or the request timed out.
    /// The request may or may not have reached MDE.
    #[error("MDE {api:?} request failed ({kind:?}): {detail}")]
    Transport {
        /// `None` for the token endpoint.
        api: Option<Api>,
        kind: TransportKind,
        detail: String,
    },
    /// A success status whose body is not the expected JSON.
    #[error("MDE {api:?} answered {status} with an unreadable body: {detail}")]
    InvalidResponse { api: Api, status: u16, detail: String },
    /// Local configuration cannot work (unreadable key or certificate, bad URL).
    #[error("MDE client configuration: {0}")]
    Config(String),
    /// Not sent: MDE's rate budget for `api` (or a block after its 429) would not allow the
    /// call within the wait the caller allowed. Nothing reached MDE; retry after `retry_after`.
    #[error("MDE's rate budget for {api:?} is spent; the call was not sent, retry in {} s", whole_seconds(*.retry_after))]
    Busy { api: Api, retry_after: Duration },
    /// Not sent: the budget every replica shares (in the database) could not be read or
    /// written, and no call goes to MDE unaccounted. Nothing reached MDE; retry later.
    #[error("MDE {api:?} call not sent: {cause}")]
    Unaccounted { api: Api, cause: super::ledger::LedgerError },
}

/// What kind of transport failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Timeout,
    Connect,
    /// The connection broke after the request was (maybe) sent.
    Other,
}

impl MdeError {
    /// True when the same call may succeed later: 429, 5xx, 408, transport failures and
    /// unreadable success bodies. Everything else (400, 401 after refresh, 403, 404, ...) is
    /// permanent. This is the single classification the worker's retry policy relies on.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api { status, .. } | Self::Token { status, .. } => status_is_retryable(*status),
            Self::Transport { .. } | Self::Busy { .. } | Self::Unaccounted { .. } => true,
            // The action may exist; the caller lists actions before sending again.
            Self::InvalidResponse { .. } => true,
            Self::ActiveRequestAlreadyExists { .. } | Self::Config(_) => false,
        }
    }

    /// How long MDE asked us to wait, from `Retry-After`. Wait at least this long.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { retry_after, .. } | Self::Token { retry_after, .. } => *retry_after,
            Self::Busy { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Token { status, .. } | Self::InvalidResponse { status, .. } => {
                Some(*status)
            }
            Self::ActiveRequestAlreadyExists { .. } => Some(400),
            Self::Transport { .. } | Self::Config(_) | Self::Busy { .. } | Self::Unaccounted { .. } => None,
        }
    }

    /// MDE's (or Entra's) error code, e.g. `ResourceNotFound`, `TooManyRequests`.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => code.as_deref(),
            Self::Token { error, .. } => error.as_deref(),
            Self::ActiveRequestAlreadyExists { .. } => Some(ACTIVE_REQUEST_ALREADY_EXISTS),
            _ => None,
        }
    }

    /// MDE's (or Entra's) error message.
    pub fn message(&self) -> Option<&str> {
        match self {
            Self::Api { message, .. } | Self::ActiveRequestAlreadyExists { message, .. } => message.as_deref(),
            Self::Token { description, .. } => description.as_deref(),
            _ => None,
        }
    }

    /// Builds the error for a non-success MDE answer from its status, body and `Retry-After`.
    pub(crate) fn from_api_answer(api: Api, status: u16, body: &[u8], retry_after: Option<Duration>) -> Self {
        let detail = serde_json::from_slice::<MdeErrorBody>(body).ok().map(|b| b.error);
        let (code, message) = detail.map_or((None, None), |d| (d.code, d.message));
        if status == 400 && code.as_deref() == Some(ACTIVE_REQUEST_ALREADY_EXISTS) {
            return Self::ActiveRequestAlreadyExists { api, message };
        }
        Self::Api { api, status, code, message, retry_after }
    }

    /// Builds the error for a request that got no HTTP answer.
    pub(crate) fn from_transport(api: Option<Api>, err: &reqwest::Error) -> Self {
        let kind = if err.is_timeout() {
            TransportKind::Timeout
        } else if err.is_connect() {
            TransportKind::Connect
        } else {
            TransportKind::Other
        };
        Self::Transport { api, kind, detail: error_chain(err) }
    }
}

/// `d` rounded up to whole seconds, at least 1: how a wait is told to people and to HTTP.
pub(crate) fn whole_seconds(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

fn status_is_retryable(status: u16) -> bool {
    status == 429 || status == 408 || (500..=599).contains(&status)
}

/// Parses `Retry-After` as delta-seconds (the form MDE documents).
pub(crate) fn parse_retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

// The cause chain says "connection reset" or "closed before message completed"; reqwest's
// top-level message alone only says "error sending request". Requests carry tokens only in
// headers, which no error message includes.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_status() {
        let body =
            br#"{"error":{"code":"ResourceNotFound","message":"Machine x was not found. OrgId: t.","target":"g"}}"#;
        let not_found = MdeError::from_api_answer(Api::GetMachine, 404, body, None);
        assert!(!not_found.is_retryable());
        assert_eq!(not_found.code(), Some("ResourceNotFound"));
        let throttled = MdeError::from_api_answer(Api::Unisolate, 429, b"", Some(Duration::from_secs(7)));
        assert!(throttled.is_retryable());
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(7)));
        assert!(MdeError::from_api_answer(Api::Unisolate, 503, b"<html>", None).is_retryable());
        assert!(!MdeError::from_api_answer(Api::Unisolate, 403, b"{}", None).is_retryable());
    }

    #[test]
    fn an_active_request_is_its_own_permanent_variant() {
        let body = br#"{"error":{"code":"ActiveRequestAlreadyExists","message":"Action is already in progress","target":"g"}}"#;
        let e = MdeError::from_api_answer(Api::Unisolate, 400, body, None);
        assert!(matches!(e, MdeError::ActiveRequestAlreadyExists { .. }));
        assert!(!e.is_retryable());
        assert_eq!(e.status(), Some(400));
        assert!(e.to_string().contains("Action is already in progress"));
    }

    #[test]
    fn busy_is_retryable_says_when_and_has_no_status() {
        let e = MdeError::Busy { api: Api::ListMachines, retry_after: Duration::from_millis(2_100) };
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_millis(2_100)));
        assert_eq!(e.status(), None);
        assert_eq!(e.code(), None);
        assert_eq!(e.to_string(), "MDE's rate budget for ListMachines is spent; the call was not sent, retry in 3 s");
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_secs(4)), 4);
    }

    #[test]
    fn a_call_the_shared_budget_could_not_account_for_is_retryable_and_was_not_sent() {
        let cause = super::super::ledger::LedgerError::new(&std::io::Error::other("pool timed out"));
        let e = MdeError::Unaccounted { api: Api::Unisolate, cause };
        assert!(e.is_retryable());
        assert_eq!((e.status(), e.retry_after(), e.code()), (None, None, None));
        assert_eq!(
            e.to_string(),
            "MDE Unisolate call not sent: the shared MDE budget could not be read or written: pool timed out"
        );
    }
}
