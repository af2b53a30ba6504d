//! Finding elements as a person does: by CSS, link text, button text, or a field's label.

use serde_json::{Value, json};

/// How to find an element.
#[derive(Clone, Debug)]
pub enum By {
    Css(String),
    LinkText(String),
    XPath(String),
}

impl By {
    pub fn css(selector: &str) -> By {
        By::Css(selector.to_string())
    }

    /// A link whose visible text is exactly `text`.
    pub fn link(text: &str) -> By {
        By::LinkText(text.to_string())
    }

    /// A `<button>` whose visible text, whitespace collapsed, is exactly `text`.
    pub fn button(text: &str) -> By {
        By::XPath(format!("//button[normalize-space()={}]", xpath_literal(text)))
    }

    /// A `<button>` whose visible text, whitespace collapsed, starts with `prefix`.
    pub fn button_starting(prefix: &str) -> By {
        By::XPath(format!("//button[starts-with(normalize-space(), {})]", xpath_literal(prefix)))
    }

    /// The input, textarea or select whose `<label>` (wrapping it, or naming it with `for`)
    /// reads `label` at its start: fields are found as a person finds them.
    pub fn labelled(label: &str) -> By {
        let l = format!("label[starts-with(normalize-space(), {})]", xpath_literal(label));
        By::XPath(format!("//*[self::input or self::textarea or self::select][@id=//{l}/@for or ancestor::{l}]"))
    }

    pub(super) fn locator(&self) -> Value {
        let (using, value) = match self {
            By::Css(s) => ("css selector", s),
            By::LinkText(s) => ("link text", s),
            By::XPath(s) => ("xpath", s),
        };
        json!({"using": using, "value": value})
    }
}

/// `text` as an XPath 1.0 string literal (which has no escapes: quote with what it lacks).
fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        format!("'{text}'")
    } else if !text.contains('"') {
        format!("\"{text}\"")
    } else {
        let parts: Vec<String> = text.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}

#[test]
fn xpath_literals_quote_with_what_the_text_lacks() {
    assert_eq!(xpath_literal("Approve"), "'Approve'");
    assert_eq!(xpath_literal("Bob's"), "\"Bob's\"");
    assert_eq!(xpath_literal(r#"a'b"c"#), r#"concat('a', "'", 'b"c')"#);
}
