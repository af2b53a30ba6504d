//! JSON: one array of objects, written as it is read (one object a line, so memory stays flat
//! and `grep` still works), with the field names of the CSV header. Unlike CSV, values are typed:
//! times are RFC 3339 strings, `approvals_required` a number, `break_glass` a boolean, absent
//! values `null`, and `approvers` a list of `{"approver", "roles", "at"}` objects.

use super::row::Row;
use std::io::Write;

/// Writes a JSON array one element at a time.
#[derive(Debug, Default)]
pub(crate) struct ArrayWriter {
    written: u64,
}

impl ArrayWriter {
    /// Opens the array.
    pub(crate) fn begin(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        out.write_all(b"[")
    }

    /// Writes one release's object.
    pub(crate) fn row(&mut self, out: &mut dyn Write, row: &Row) -> std::io::Result<()> {
        out.write_all(if self.written == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut *out, row)?;
        self.written += 1;
        Ok(())
    }

    /// Closes the array: `[\n]` when it is empty.
    pub(crate) fn end(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        out.write_all(b"\n]\n")
    }
}
