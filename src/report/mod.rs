//! `dualkey report`: the separation-of-duties report auditors ask for. One row per release
//! requested in `[--from, --to)`: the device, who asked, who approved under which roles, the
//! rule, who decided and when, when it was sent and finished, break-glass and its ratification,
//! the outcome and the MDE action.
//!
//! It runs on the host, beside the daemon or without it: it opens the database read-only and
//! reads one snapshot, a page of releases at a time with one query per table per page, writing
//! each page out before reading the next, so memory stays flat however long the window.

mod csv;
mod json;
mod row;
mod window;

pub(crate) use window::parse_time;

use crate::clock::Timestamp;
use crate::db::report::{self as sql, Cursor};
use crate::settings::Settings;
use anyhow::Context;
use row::Row;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use window::Window;

/// Releases read per page (and per query of approvals and audit entries).
const PAGE: i64 = 1000;

/// How the report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// RFC 4180 CSV with a header row; cells that start like a formula get a leading `'`.
    Csv,
    /// One JSON array of objects (one a line), keyed like the CSV header.
    Json,
}

/// The arguments of `dualkey report`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Releases requested at or after this time: RFC 3339, or a date (midnight UTC).
    #[arg(long, value_name = "TIME", value_parser = window::parse_time)]
    pub from: Timestamp,
    /// Releases requested before this time: RFC 3339, or a date (midnight UTC).
    #[arg(long, value_name = "TIME", value_parser = window::parse_time)]
    pub to: Timestamp,
    /// `csv` (RFC 4180, a header row) or `json` (an array of objects).
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
    /// Write the report to this file (replaced only once the report is complete) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Writes the report `args` asks for from the database `settings` names; says on stderr how
/// many releases it holds.
pub(crate) async fn run(settings: &Settings, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let window = Window::new(args.from, args.to).map_err(anyhow::Error::msg)?;
    let mut conn = sql::open(&settings.database)
        .await
        .with_context(|| format!("opening the database {} read-only", settings.database.url))?;
    let mut out = Out::open(args.out.as_deref())?;
    let rows = write(&mut conn, window, args.format, out.writer()).await?;
    out.finish()?;
    eprintln!("{rows} releases requested in [{}, {})", window.from, window.to);
    Ok(ExitCode::SUCCESS)
}

/// Reads the window page by page from one snapshot and writes each row; returns the count.
async fn write(conn: &mut crate::db::Conn, window: Window, format: Format, out: &mut dyn Write) -> anyhow::Result<u64> {
    let mut array = json::ArrayWriter::default();
    match format {
        Format::Csv => csv::header(out)?,
        Format::Json => array.begin(out)?,
    }
    let mut tx = sql::snapshot(conn).await.context("starting a read transaction")?;
    let mut cursor = Cursor::start(window.from);
    let mut rows = 0;
    loop {
        let page = sql::releases_page(&mut tx, &cursor, window.to, PAGE)
            .await
            .context("reading releases (has `dualkey migrate` run on this database?)")?;
        let Some(last) = page.last() else { break };
        cursor = Cursor::after(last);
        let ids = || page.iter().map(|r| r.id.as_str());
        let mut approvals = crate::db::approvals::of_page(&mut tx, ids()).await.context("reading approvals")?;
        let trails = sql::trail_of_page(&mut tx, ids()).await.context("reading the audit trail")?;
        let full = page.len() as i64 == PAGE;
        for facts in page {
            let approvals = approvals.remove(&facts.id).unwrap_or_default();
            let trail = trails.get(&facts.id).map(Vec::as_slice).unwrap_or_default();
            let row = Row::new(facts, approvals, trail);
            match format {
                Format::Csv => csv::write_row(out, &row)?,
                Format::Json => array.row(out, &row)?,
            }
            rows += 1;
        }
        if !full {
            break;
        }
    }
    if format == Format::Json {
        array.end(out)?;
    }
    Ok(rows)
}

/// Where the report goes: stdout, or a temporary file beside `--out` that takes its name only
/// once the report is complete, so a failed run never leaves half a report under that name.
enum Out {
    Stdout(BufWriter<std::io::Stdout>),
    File { tmp: BufWriter<tempfile::NamedTempFile>, path: PathBuf },
}

impl Out {
    fn open(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else { return Ok(Out::Stdout(BufWriter::new(std::io::stdout()))) };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("creating a file in {} for the report", dir.display()))?;
        Ok(Out::File { tmp: BufWriter::new(tmp), path: path.to_path_buf() })
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Out::Stdout(w) => w,
            Out::File { tmp, .. } => tmp,
        }
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Out::Stdout(mut w) => w.flush().context("writing the report to stdout"),
            Out::File { tmp, path } => {
                let tmp = tmp.into_inner().map_err(|e| e.into_error()).context("writing the report")?;
                tmp.as_file().sync_all().context("writing the report")?;
                tmp.persist(&path).with_context(|| format!("saving the report as {}", path.display()))?;
                Ok(())
            }
        }
    }
}
