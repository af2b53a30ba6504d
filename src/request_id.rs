//! The id of the HTTP request being handled: taken from the client's `X-Request-Id` when it is
//! 1 to 128 characters of `[A-Za-z0-9._-]`, else generated. The middleware in
//! `routes::request_id` sets it for the request's task; [`current`] reads it there (the audit
//! trail puts it in `details.request_id`). Work not caused by a request (the worker, the
//! sweepers) runs in its own tasks, where there is none.

use std::future::Future;

/// The most characters an incoming id may have.
pub(crate) const MAX_LEN: usize = 128;

/// A request id: 1 to [`MAX_LEN`] characters of `[A-Za-z0-9._-]`, so it is safe in a header,
/// a log line and a file name as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestId(String);

impl RequestId {
    /// The id a client sent, or `None` when it is empty, too long or has another character.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let fits = (1..=MAX_LEN).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        fits.then(|| Self(text.to_string()))
    }

    /// A fresh id: a UUID v7 (time-ordered, so ids sort roughly by arrival).
    pub(crate) fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

tokio::task_local! {
    static CURRENT: RequestId;
}

/// Runs `work` as part of the request `id`: [`current`] returns it inside.
pub(crate) async fn scope<F: Future>(id: RequestId, work: F) -> F::Output {
    CURRENT.scope(id, work).await
}

/// The id of the request this task is handling, if it is handling one.
pub(crate) fn current() -> Option<RequestId> {
    CURRENT.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_1_to_128_characters_of_letters_digits_dot_underscore_and_dash() {
        for good in ["a", "0193a8e4-7a3c-7d5e-9b1f-0123456789ab", "req_1.A-z", &"x".repeat(128)] {
            assert_eq!(RequestId::parse(good).map(|id| id.0), Some(good.to_string()), "{good}");
        }
        for bad in ["", &"x".repeat(129), "a b", "a/b", "a\nb", "é", "a:b", "%41", "a\u{0}"] {
            assert_eq!(RequestId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_generated_id_is_itself_a_valid_id_and_new_each_time() {
        let (a, b) = (RequestId::generate(), RequestId::generate());
        assert_ne!(a, b);
        assert_eq!(RequestId::parse(a.as_str()), Some(a));
    }

    #[tokio::test]
    async fn the_id_is_current_inside_its_scope_only() {
        assert_eq!(current(), None);
        let id = RequestId::parse("r-1").unwrap();
        assert_eq!(scope(id.clone(), async { current() }).await, Some(id));
        assert_eq!(current(), None);
    }
}
