//! Free text that people write: comments and ticket references.
//!
//! Text that shows nothing, or shows something other than what it holds, is refused: control
//! characters (other than a comment's newlines and tabs), format characters (Unicode general
//! category Cf: zero-width spaces and joiners, U+2060, U+FEFF, the soft hyphen, tag characters,
//! and every bidirectional control: U+061C, U+200E/U+200F, U+202A–U+202E, U+2066–U+2069) and
//! line or paragraph separators (U+2028/U+2029). Minimum lengths count visible characters only.

use super::ParseError;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

const MAX_COMMENT_CHARS: usize = 1000;
const MAX_TICKET_CHARS: usize = 128;

/// Letters and symbols that fonts draw as blank space: the Hangul fillers (Default_Ignorable
/// code points in Unicode's DerivedCoreProperties.txt that are letters, not Cf) and the empty
/// Braille pattern. Not refused, but never counted as visible.
const BLANK_LOOKING: [char; 5] = ['\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}', '\u{2800}'];

/// True for a character that is invisible or changes how the text around it is shown: control
/// (Cc), format (Cf, which holds every bidirectional control) and line or paragraph separators.
/// Comments allow `\n` and `\t` on top; tickets and identities allow none.
pub fn is_hidden_control(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// Whether `c` puts something a reader can see on the screen by itself: not whitespace, not a
/// hidden control, not a combining mark (it belongs to the character before it), not unassigned
/// and not one of the blank-looking letters.
fn shows_ink(c: char) -> bool {
    !c.is_whitespace()
        && !is_hidden_control(c)
        && !BLANK_LOOKING.contains(&c)
        && !matches!(
            c.general_category(),
            GeneralCategory::NonspacingMark
                | GeneralCategory::SpacingMark
                | GeneralCategory::EnclosingMark
                | GeneralCategory::Unassigned
        )
}

/// How many characters of `text` a reader sees: characters that show ink, plus one for each run
/// of whitespace between two of them (a gap between words is seen, a wall of spaces is one gap).
pub fn visible_chars(text: &str) -> usize {
    let mut count = 0;
    let mut gap = false;
    for c in text.chars() {
        if c.is_whitespace() {
            gap = count > 0;
        } else if shows_ink(c) {
            count += 1 + usize::from(gap);
            gap = false;
        }
    }
    count
}

/// `U+202E`, for messages that name a character the reader cannot see.
fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// A trimmed comment of at least `min` visible characters and at most 1000 characters, without
/// hidden controls other than newlines and tabs (so it cannot forge lines in logs or the MDE
/// portal, hide text, or show its text in another order than it is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment(String);

impl Comment {
    pub fn parse(raw: &str, min_chars: usize) -> Result<Self, ParseError> {
        let trimmed = raw.trim();
        if let Some(c) = trimmed.chars().find(|&c| is_hidden_control(c) && !matches!(c, '\n' | '\t')) {
            return Err(ParseError::new(
                "invalid_comment",
                format!(
                    "comment must not contain control, invisible or text-direction characters (found {})",
                    code_point(c)
                ),
            ));
        }
        if trimmed.chars().count() > MAX_COMMENT_CHARS {
            return Err(ParseError::new(
                "invalid_comment",
                format!("comment must be at most {MAX_COMMENT_CHARS} characters"),
            ));
        }
        if visible_chars(trimmed) < min_chars {
            return Err(ParseError::new(
                "invalid_comment",
                format!("comment must have at least {min_chars} visible characters (a run of spaces counts once)"),
            ));
        }
        Ok(Self(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its length as minimums count it: see [`visible_chars`].
    pub fn visible_len(&self) -> usize {
        visible_chars(&self.0)
    }
}

/// A change or incident ticket reference: 1 to 128 characters, all visible, no whitespace or
/// hidden controls inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket(String);

impl Ticket {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let t = raw.trim();
        let ok = visible_chars(t) > 0
            && t.chars().count() <= MAX_TICKET_CHARS
            && t.chars().all(|c| !c.is_whitespace() && !is_hidden_control(c) && !BLANK_LOOKING.contains(&c));
        if ok {
            Ok(Self(t.to_string()))
        } else {
            Err(ParseError::new(
                "invalid_ticket",
                format!(
                    "ticket must be 1 to {MAX_TICKET_CHARS} visible characters without spaces, control, invisible or text-direction characters"
                ),
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
    fn comments_keep_newlines_and_tabs_but_refuse_other_control_characters() {
        assert!(Comment::parse("line one\nline two", 10).is_ok());
        assert!(Comment::parse("column one\tcolumn two", 10).is_ok());
        assert!(Comment::parse("line one\rforged", 10).is_err());
        assert!(Comment::parse("bell \u{7} ringing here", 10).is_err());
        assert!(Comment::parse("escape \u{1b}[31m red text", 10).is_err());
        assert!(Comment::parse("next line \u{85} here now", 10).is_err());
    }

    #[test]
    fn twelve_zero_width_spaces_are_not_a_comment() {
        let e = Comment::parse(&"\u{200B}".repeat(12), 10).unwrap_err();
        assert_eq!(e.code, "invalid_comment");
        assert!(e.message.contains("U+200B"), "{}", e.message);
    }

    #[test]
    fn every_bidirectional_control_is_refused_in_comments() {
        let bidi = ['\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}']
            .into_iter()
            .chain('\u{2066}'..='\u{2069}');
        for c in bidi {
            let text = format!("approved by {c}nimda the admin");
            assert!(Comment::parse(&text, 10).is_err(), "{}", code_point(c));
        }
    }

    #[test]
    fn other_format_characters_and_separators_are_refused_in_comments() {
        for c in [
            '\u{00AD}',
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{E0041}',
            '\u{2028}',
            '\u{2029}',
        ] {
            let text = format!("reimaged{c} and scanned clean");
            assert!(Comment::parse(&text, 10).is_err(), "{}", code_point(c));
        }
    }

    #[test]
    fn minimums_count_visible_characters_only() {
        assert_eq!(visible_chars("clean after reimage"), 19);
        assert_eq!(visible_chars("a          b"), 3, "a run of spaces counts once");
        assert_eq!(visible_chars("e\u{301}e\u{301}"), 2, "a combining accent belongs to its letter");
        assert_eq!(visible_chars(&"\u{3164}".repeat(12)), 0, "Hangul fillers look blank");
        assert_eq!(visible_chars("\u{2800}\u{2800} \u{3000}\u{3000}"), 0);
        assert!(Comment::parse(&format!("ok{}", "\u{3164}".repeat(20)), 10).is_err());
        assert!(Comment::parse(&format!("a{}b", " ".repeat(20)), 10).is_err());
        assert!(Comment::parse("reimaged and scanned clean", 10).is_ok());
        assert!(Comment::parse("日本語のコメントです", 10).is_ok(), "ten visible CJK characters");
    }

    #[test]
    fn tickets_are_single_tokens() {
        assert_eq!(Ticket::parse(" INC-1234 ").unwrap().as_str(), "INC-1234");
        assert!(Ticket::parse("INC 1234").is_err());
        assert!(Ticket::parse("").is_err());
    }

    #[test]
    fn tickets_refuse_invisible_and_text_direction_characters() {
        for t in
            ["INC-1234\u{200B}", "\u{200B}", "INC\u{202E}4321", "\u{FEFF}INC-1", "INC\u{3164}1", "\u{2800}", "\u{301}"]
        {
            let e = Ticket::parse(t).unwrap_err();
            assert_eq!(e.code, "invalid_ticket", "{t:?}");
        }
        assert!(Ticket::parse("CHG-été").is_ok());
    }
}
