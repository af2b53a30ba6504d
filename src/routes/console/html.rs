//! Server-rendered HTML: escaping, the page layout with its navigation, and small pieces every
//! page uses. Every value that came from a person, a token or MDE goes through [`esc`].

use super::session::Session;
use crate::clock::Timestamp;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use std::fmt::Write;

/// `text` safe inside HTML text and double-quoted attributes.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: head, navigation (for a signed-in person), `body`.
pub(super) fn page(title: &str, session: Option<&Session>, body: &str) -> String {
    let mut nav = String::new();
    if let Some(s) = session {
        let who = s.name.as_deref().or(s.principal.upn.as_deref()).unwrap_or(&s.principal.id);
        let _ = write!(
            nav,
            r#"<nav aria-label="Main"><a href="/ui/">Queue</a><a href="/ui/request">Request release</a><a href="/ui/mine">Mine</a><a href="/ui/audit">Audit</a><span class="who" title="{id}">{who}</span><form method="post" action="/ui/logout" class="inline">{csrf}<button type="submit">Sign out</button></form></nav>"#,
            id = esc(&s.principal.id),
            who = esc(who),
            csrf = csrf_input(s),
        );
    }
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · dualkey</title>
<link rel="stylesheet" href="/ui/assets/console.css">
<script src="/ui/assets/console.js" defer></script>
</head>
<body>
<header><a class="brand" href="/ui/">dualkey</a>{nav}</header>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"#,
        title = esc(title),
    )
}

/// The hidden input every state-changing form carries.
pub(super) fn csrf_input(s: &Session) -> String {
    format!(r#"<input type="hidden" name="csrf" value="{}">"#, esc(&s.csrf))
}

/// An HTML answer with `status`.
pub(super) fn respond(status: StatusCode, html: String) -> Response {
    (status, Html(html)).into_response()
}

/// A page asking the person to sign in, coming back to `return_to` afterwards.
pub(super) fn sign_in_page(return_to: &str, note: Option<&str>) -> String {
    let note = note.map(|n| format!(r#"<p class="notice">{}</p>"#, esc(n))).unwrap_or_default();
    let body = format!(
        r#"{note}<p>dualkey puts a second person in front of releasing a device from isolation in Microsoft Defender for Endpoint. Sign in with your organisation's account to see what waits for you.</p>
<form method="get" action="/ui/login"><input type="hidden" name="return_to" value="{rt}"><button type="submit" class="primary">Sign in</button></form>"#,
        rt = esc(return_to),
    );
    page("Sign in", None, &body)
}

/// An error page: what happened in plain words, and the stable code.
pub(super) fn error_page(session: Option<&Session>, title: &str, message: &str, code: &str) -> String {
    let body = format!(
        r#"<p role="alert" class="error">{} <span class="code">({})</span></p><p><a href="/ui/">Back to the queue</a></p>"#,
        esc(message),
        esc(code)
    );
    page(title, session, &body)
}

/// `d` as people say it: "45 s", "12 min", "3 h 5 min", "2 d 4 h".
pub(super) fn span(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

/// A time, machine-readable in `datetime` and readable in the text.
pub(super) fn time(t: Timestamp) -> String {
    let text = t.rfc3339();
    let shown = text.get(..19).unwrap_or(&text).replace('T', " ");
    format!(r#"<time datetime="{text}">{shown} UTC</time>"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_reflected_text_is_escaped() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        let page = sign_in_page(r#"/ui/"><script>x</script>"#, Some("<b>"));
        assert!(!page.contains("<script>x") && !page.contains("<b>"), "{page}");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        let s = std::time::Duration::from_secs;
        assert_eq!(span(s(45)), "45 s");
        assert_eq!(span(s(12 * 60 + 5)), "12 min");
        assert_eq!(span(s(3 * 3600 + 5 * 60)), "3 h 5 min");
        assert_eq!(span(s(2 * 86400 + 4 * 3600)), "2 d 4 h");
    }
}
