//! Free text that people write: comments and ticket references.

use super::ParseError;

const MAX_COMMENT_CHARS: usize = 1000;
const MAX_TICKET_CHARS: usize = 128;

/// A trimmed comment between `min` and 1000 characters, without control characters other
/// than newlines (so it cannot forge lines in logs or the MDE portal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment(String);

impl Comment {
    pub fn parse(raw: &str, min_chars: usize) -> Result<Self, ParseError> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars < min_chars {
            return Err(ParseError::new(
                "invalid_comment",
                format!("comment must be at least {min_chars} characters after trimming"),
            ));
        }
        if chars > MAX_COMMENT_CHARS {
            return Err(ParseError::new(
                "invalid_comment",
                format!("comment must be at most {MAX_COMMENT_CHARS} characters"),
            ));
        }
        if trimmed.chars().any(|c| c.is_control() && c != '\n') {
            return Err(ParseError::new(
                "invalid_comment",
                "comment must not contain control characters other than newlines",
            ));
        }
        Ok(Self(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A change or incident ticket reference: 1 to 128 printable characters, no whitespace inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket(String);

impl Ticket {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let t = raw.trim();
        let ok = !t.is_empty()
            && t.chars().count() <= MAX_TICKET_CHARS
            && t.chars().all(|c| !c.is_control() && !c.is_whitespace());
        if ok {
            Ok(Self(t.to_string()))
        } else {
            Err(ParseError::new(
                "invalid_ticket",
                format!("ticket must be 1 to {MAX_TICKET_CHARS} characters without spaces or control characters"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_trimmed_and_bounded() {
        assert_eq!(Comment::parse("  clean after reimage \n", 10).unwrap().as_str(), "clean after reimage");
        assert!(Comment::parse("   short  ", 10).is_err());
        assert!(Comment::parse(&"x".repeat(1001), 10).is_err());
        assert!(Comment::parse(&"é".repeat(1000), 10).is_ok());
    }

    #[test]
    fn comments_keep_newlines_but_refuse_other_control_characters() {
        assert!(Comment::parse("line one\nline two", 10).is_ok());
        assert!(Comment::parse("line one\rforged", 10).is_err());
        assert!(Comment::parse("bell \u{7} ringing here", 10).is_err());
    }

    #[test]
    fn tickets_are_single_tokens() {
        assert_eq!(Ticket::parse(" INC-1234 ").unwrap().as_str(), "INC-1234");
        assert!(Ticket::parse("INC 1234").is_err());
        assert!(Ticket::parse("").is_err());
    }
}
