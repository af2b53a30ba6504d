//! The bytes a syslog forwarder writes for one entry: an RFC 5424 message in an RFC 6587
//! octet-counting frame. Pure; the host name is read once at start-up ([`this_host`]).
//!
//! ```text
//! LEN SP <85>1 TIMESTAMP HOSTNAME dualkey - MSGID - BOM LEAF-LINE
//! ```
//!
//! `LEN` is the number of octets after the space. PRI 85 is facility authpriv (10), severity
//! notice (5). TIMESTAMP is the entry's `at`, RFC 3339 in UTC with 3 fractional digits
//! (RFC 5424 allows at most 6). HOSTNAME is this machine's name, or `-`. PROCID and
//! STRUCTURED-DATA are `-`. MSGID is the entry's action (`checkpoint` for a checkpoint). MSG is
//! UTF-8, so it starts with the byte order mark RFC 5424 requires for UTF-8 (EF BB BF), followed
//! by the exact leaf line of the entry ([`crate::audit::leaf_line`]): strip the three bytes and
//! hash the rest.

use crate::audit::{AuditEntry, leaf_line};
use crate::clock::Timestamp;

/// `<85>`: facility authpriv (10) times 8, plus severity notice (5).
pub(crate) const PRI: u8 = 10 * 8 + 5;
/// RFC 5424 APP-NAME.
pub(crate) const APP_NAME: &str = "dualkey";
/// What RFC 5424 puts before a MSG encoded in UTF-8.
pub(crate) const BOM: &str = "\u{feff}";
/// RFC 5424: HOSTNAME is at most 255 and MSGID at most 32 printable US-ASCII characters.
const MAX_HOSTNAME: usize = 255;
const MAX_MSGID: usize = 32;

/// The RFC 5424 message for `entry`, sent from `host` (a HOSTNAME field, see [`this_host`]).
pub(crate) fn message(entry: &AuditEntry, host: &str) -> String {
    format!("<{PRI}>1 {} {host} {APP_NAME} - {} - {BOM}{}", timestamp(entry.at), msgid(&entry.action), leaf_line(entry))
}

/// `message` framed by octet counting: its length in bytes, a space, the message.
pub(crate) fn frame(entry: &AuditEntry, host: &str) -> Vec<u8> {
    let message = message(entry, host);
    let mut out = format!("{} ", message.len()).into_bytes();
    out.extend_from_slice(message.as_bytes());
    out
}

/// RFC 3339 in UTC, to the millisecond (3 of the 6 fractional digits RFC 5424 allows).
fn timestamp(at: Timestamp) -> String {
    at.rfc3339()
}

/// The action as MSGID: actions are short snake_case names already; anything else a MSGID
/// cannot hold becomes `_`, and it is cut at 32 characters.
fn msgid(action: &str) -> String {
    let id: String = action.chars().take(MAX_MSGID).map(|c| if printable_ascii(c) { c } else { '_' }).collect();
    if id.is_empty() { "-".into() } else { id }
}

fn printable_ascii(c: char) -> bool {
    c.is_ascii_graphic()
}

/// `name` as a HOSTNAME field: itself when it is 1 to 255 printable US-ASCII characters, else
/// the NILVALUE `-`.
pub(crate) fn host_field(name: Option<&str>) -> String {
    match name.map(str::trim) {
        Some(n) if !n.is_empty() && n.len() <= MAX_HOSTNAME && n.chars().all(printable_ascii) => n.to_string(),
        _ => "-".into(),
    }
}

/// This machine's host name as a HOSTNAME field (the kernel's name on Linux; `-` where it
/// cannot be read).
pub(crate) fn this_host() -> String {
    host_field(crate::net::host_name().as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            seq: 12,
            at: Timestamp::from_unix_ms(1_764_600_000_123),
            actor: "alice".into(),
            action: action.into(),
            release_id: None,
            machine_id: None,
            release_prev_seq: None,
            details: r#"{"comment":"grün"}"#.into(),
            prev_hash: "0".repeat(64),
            hash: "f".repeat(64),
        }
    }

    #[test]
    fn the_header_is_rfc5424_with_the_action_as_msgid_and_the_leaf_line_after_a_bom() {
        let e = entry("release_requested");
        let m = message(&e, "dk1.example.com");
        let header = "<85>1 2025-12-01T14:40:00.123Z dk1.example.com dualkey - release_requested - ";
        assert!(m.starts_with(header), "{m}");
        let msg = &m.as_bytes()[header.len()..];
        assert_eq!(&msg[..3], b"\xEF\xBB\xBF", "UTF-8 MSG starts with the BOM");
        assert_eq!(std::str::from_utf8(&msg[3..]).unwrap(), leaf_line(&e));
        assert!(message(&entry("checkpoint"), "-").contains(" dualkey - checkpoint - "));
    }

    #[test]
    fn a_frame_counts_the_octets_of_the_message_not_its_characters() {
        let e = entry("approval_recorded");
        let f = frame(&e, "h");
        let text = String::from_utf8(f).unwrap();
        let (len, rest) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), rest.len());
        assert_ne!(rest.len(), rest.chars().count(), "the ü and the BOM are several octets each");
        assert_eq!(rest, message(&e, "h"));
    }

    #[test]
    fn the_timestamp_is_utc_with_at_most_six_fractional_digits() {
        for ms in [0, 1_764_600_000_000, 1_764_600_000_007, 253_402_300_799_999] {
            let t = timestamp(Timestamp::from_unix_ms(ms));
            let (_, fraction) = t.split_once('.').unwrap();
            let digits = fraction.strip_suffix('Z').unwrap();
            assert!((1..=6).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()), "{t}");
        }
        assert_eq!(timestamp(Timestamp::from_unix_ms(1_764_600_000_007)), "2025-12-01T14:40:00.007Z");
    }

    #[test]
    fn hostname_and_msgid_hold_only_printable_us_ascii() {
        assert_eq!(host_field(Some("dk1.example.com\n")), "dk1.example.com");
        for bad in [None, Some(""), Some("dk 1"), Some("dk1\u{e9}"), Some(&*"h".repeat(256))] {
            assert_eq!(host_field(bad), "-", "{bad:?}");
        }
        assert_eq!(msgid("a b\u{e9}"), "a_b_");
        assert_eq!(msgid(&"x".repeat(40)).len(), 32);
        assert_eq!(msgid(""), "-");
        assert!(this_host().chars().all(printable_ascii));
    }
}
