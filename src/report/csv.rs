//! CSV as RFC 4180 writes it: one record a line, ended by CRLF, the header first; a field that
//! holds a comma, a double quote, CR or LF is enclosed in double quotes, with its own double
//! quotes doubled.
//!
//! Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` as a formula (and some strip a
//! leading tab or CR first), so a comment or a name chosen by a requester could run a formula on
//! an auditor's machine (CSV injection). Such a cell is written with a leading `'`, which makes
//! spreadsheets show it as text: `=HYPERLINK(...)` becomes `'=HYPERLINK(...)`. The quote is part
//! of the value; a program reading the file sees it too (the JSON format never adds it).

use super::row::Row;
use std::borrow::Cow;
use std::io::Write;

/// `raw` made inert for spreadsheets: a leading `'` when it starts like a formula (`=`, `+`,
/// `-`, `@`, tab or CR first).
pub(crate) fn neutralise(raw: &str) -> Cow<'_, str> {
    match raw.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{raw}")),
        _ => Cow::Borrowed(raw),
    }
}

/// `field` as an RFC 4180 field: quoted when it holds a comma, a double quote, CR or LF.
pub(crate) fn quote(field: &str) -> Cow<'_, str> {
    // Bytes, not chars: all four are ASCII, which never occurs inside a multi-byte character.
    if field.bytes().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n')) {
        Cow::Owned(format!("\"{}\"", field.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(field)
    }
}

/// One record: every cell neutralised, then quoted, joined by commas, ended by CRLF.
pub(crate) fn record<'a>(cells: impl IntoIterator<Item = &'a str>) -> String {
    let mut line = String::new();
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&quote(&neutralise(cell)));
    }
    line.push_str("\r\n");
    line
}

/// Writes the header record.
pub(crate) fn header(out: &mut dyn Write) -> std::io::Result<()> {
    out.write_all(record(Row::COLUMNS).as_bytes())
}

/// Writes one release's record, its cells in the order of [`Row::COLUMNS`].
pub(crate) fn write_row(out: &mut dyn Write, row: &Row) -> std::io::Result<()> {
    let cells = row.cells();
    out.write_all(record(cells.iter().map(String::as_str)).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_fields_are_written_as_they_are() {
        assert_eq!(
            record(["a", "bob (Release.Approve)", "", "2026-03-03T09:30:00.000Z"]),
            "a,bob (Release.Approve),,2026-03-03T09:30:00.000Z\r\n"
        );
    }

    #[test]
    fn commas_quotes_and_line_breaks_are_quoted_with_quotes_doubled() {
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quote("two\nlines"), "\"two\nlines\"");
        assert_eq!(quote("cr\rhere"), "\"cr\rhere\"");
        assert_eq!(quote("\""), "\"\"\"\"");
        assert_eq!(record(["x", "a,\"b\"\r\nc"]), "x,\"a,\"\"b\"\"\r\nc\"\r\n");
    }

    #[test]
    fn cells_that_start_like_a_formula_get_a_leading_apostrophe() {
        for (raw, written) in [
            ("=1+1", "'=1+1"),
            ("+33 1 23", "'+33 1 23"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "\"'\rx\""),
            ("=HYPERLINK(\"http://evil\",\"x\")", "\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\""),
            ("=a,b", "\"'=a,b\""),
        ] {
            assert_eq!(record([raw]), format!("{written}\r\n"), "{raw:?}");
        }
    }

    #[test]
    fn a_formula_character_later_in_the_cell_is_harmless_and_left_alone() {
        for raw in ["a=b", "bob-admin", "x@contoso.com", " =1", "'=1", "2026-03-03T09:30:00.000Z"] {
            assert_eq!(neutralise(raw), raw);
        }
    }
}
