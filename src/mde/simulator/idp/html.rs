//! The identity provider's pages: plain server-rendered HTML with no script at all, every
//! reflected value escaped, a stylesheet allowed by its hash, and headers that keep the pages
//! out of frames (a sign-in button must never be clickjacked).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use super::config::DevUser;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;\
line-height:1.5;color:#1b1b1b}\
.banner{background:#fff4ce;border:1px solid #c19c00;padding:.5rem .75rem;border-radius:4px}\
.users{display:flex;flex-direction:column;gap:.5rem;margin:1rem 0}\
button{font-size:1rem;padding:.6rem 1rem;text-align:left;border:1px solid #8a8886;border-radius:4px;\
background:#fff;cursor:pointer}\
button:hover,button:focus{background:#f3f2f1;outline:2px solid #0078d4}\
button.secondary{text-align:center}\
label{display:block;font-weight:600;margin-top:1rem}\
input[type=text]{font-size:1.2rem;padding:.4rem;letter-spacing:.1em;text-transform:uppercase}\
.detail{color:#605e5c;font-size:.9rem;word-break:break-all}";

/// Escapes `s` for HTML text and double- or single-quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// A whole page: `title` (plain text, escaped here) and `body` (HTML the caller built with
/// [`escape`] around every reflected value), under the "not for production" banner.
pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let title = escape(title);
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · dualkey dev sign-in</title><style>{STYLE}</style></head><body>\
<p class=\"banner\" role=\"note\">Development identity provider — not for production</p>\
<h1>{title}</h1>\n{body}\n</body></html>\n"
    );
    let csp = format!(
        "default-src 'none'; style-src 'sha256-{}'; frame-ancestors 'none'; base-uri 'none'",
        STANDARD.encode(Sha256::digest(STYLE.as_bytes()))
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A 400 page that says what was wrong and that nothing was sent back to the app.
pub(crate) fn refusal(title: &str, message: &str) -> Response {
    let body = format!("<p role=\"alert\">{}</p>", escape(message));
    page(StatusCode::BAD_REQUEST, title, &body)
}

/// One submit button per user, `name="user" value="bob"`, reading "Bob (Release.Approve)".
pub(crate) fn user_buttons(users: &[DevUser]) -> String {
    let mut html = String::from("<div class=\"users\">");
    for user in users {
        html.push_str(&format!(
            "<button type=\"submit\" name=\"user\" value=\"{}\">{} ({})</button>",
            escape(&user.name),
            escape(&user.display_name),
            escape(&user.roles.join(", "))
        ));
    }
    html.push_str("</div>");
    html
}

/// `<input type="hidden">` for each present parameter, in the order given.
pub(crate) fn hidden_inputs<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    fields
        .into_iter()
        .map(|(name, value)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(name), escape(value)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup_and_both_quotes() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape("plain text"), "plain text");
    }

    #[test]
    fn a_page_forbids_scripts_and_frames() {
        let response = page(StatusCode::OK, "Sign in", "<p>hi</p>");
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
    }
}
