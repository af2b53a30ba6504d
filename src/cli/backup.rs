//! `dualkey backup` and `dualkey restore`: a SQLite database copied out while the daemon runs,
//! and put back once it has stopped. Each writes a temporary file beside its destination, makes
//! it durable (fsync), then renames it into place, so the destination is always either the old
//! file or the whole new one; on any failure the temporary file is removed.

use super::{ConfigArg, load_settings};
use crate::db::{Backend, Db, backup as sqlite};
use anyhow::{Context, bail};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `dualkey backup --out FILE [--force]`.
pub(super) async fn backup(config: &ConfigArg, out: &Path, force: bool) -> anyhow::Result<ExitCode> {
    let settings = load_settings(config)?;
    let url = &settings.database.url;
    let source = sqlite_target(url, "back up", "pg_dump (e.g. `pg_dump --format=custom --file=dualkey.dump URL`)")?;
    refuse_existing(out, force)?;
    if same_file(&source, out) {
        bail!("--out {} is the database itself", out.display());
    }
    // Never create the database: a missing one is a wrong `database.url`, not an empty backup.
    let database = crate::settings::DatabaseSettings { url: url.replace("mode=rwc", "mode=rw"), ..settings.database };
    let db = Db::connect(&database).await.with_context(|| format!("opening the database {}", source.display()))?;
    let temp = TempFile::create(out, "backup")?;
    let copied = sqlite::vacuum_into(&db, &temp.path).await;
    db.close().await;
    copied.with_context(|| format!("copying {} into {}", source.display(), temp.path.display()))?;
    temp.sync()?;
    let head = sqlite::verify_copy(&temp.path).await.context("the copy does not verify; no backup written")?;
    let bytes = temp.place(out)?;
    println!("backed up {} to {} ({bytes} bytes)", source.display(), out.display());
    println!("audit chain and tree intact: {} entries, head {}, tree root {}", head.seq, head.hash, head.root);
    Ok(ExitCode::SUCCESS)
}

/// `dualkey restore --from FILE [--force]`.
pub(super) async fn restore(config: &ConfigArg, from: &Path, force: bool) -> anyhow::Result<ExitCode> {
    let settings = load_settings(config)?;
    let target = sqlite_target(&settings.database.url, "restore into", "pg_restore")?;
    if !from.is_file() {
        bail!("--from {}: no such file", from.display());
    }
    if same_file(&target, from) {
        bail!("--from {} is the database itself", from.display());
    }
    let _lock = sqlite::lock_out_daemons(&target)?;
    let existing = target.exists();
    if existing && !force {
        bail!("{} exists (no daemon holds it): pass --force to replace it with {}", target.display(), from.display());
    }
    let temp = TempFile::create(&target, "restore")?;
    std::io::copy(&mut File::open(from).with_context(|| format!("opening {}", from.display()))?, &mut temp.file()?)
        .with_context(|| format!("copying {} to {}", from.display(), temp.path.display()))?;
    temp.sync()?;
    // What is verified is exactly what is put in place: the bytes already copied.
    let head = sqlite::verify_copy(&temp.path)
        .await
        .with_context(|| format!("{} cannot be restored; nothing was changed", from.display()))?;
    if existing {
        temp.take_owner_of(&target)?;
        temp.take_mode_of(&target)?;
        if let Err(e) = sqlite::checkpoint(&target).await {
            tracing::warn!(error = %e, "could not checkpoint the database being replaced");
        }
    } else if let Err(e) = temp.take_owner_of(parent(&target)) {
        // A new file: the directory's owner is only a guess at the daemon's user.
        tracing::debug!(error = %e, "the restored database keeps the owner of whoever restored it");
    }
    // A `-wal` or journal left beside the new file would be replayed into it.
    for suffix in ["-wal", "-shm", "-journal"] {
        remove_if_present(&sibling(&target, suffix))?;
    }
    temp.place(&target)?;
    println!("restored {} to {}", from.display(), target.display());
    println!("audit chain and tree intact: {} entries, head {}, tree root {}", head.seq, head.hash, head.root);
    Ok(ExitCode::SUCCESS)
}

/// The SQLite file `url` names, or why `action` cannot work on it.
fn sqlite_target(url: &str, action: &str, postgres_tool: &str) -> anyhow::Result<PathBuf> {
    if Backend::of_url(url) == Backend::Postgres {
        bail!(
            "database.url is a PostgreSQL database: dualkey can only {action} SQLite files; use {postgres_tool} \
             (README, \"Backups and the restore drill\")"
        );
    }
    crate::db::sqlite_file(url)?.with_context(|| format!("database.url is an in-memory database: nothing to {action}"))
}

fn refuse_existing(path: &Path, force: bool) -> anyhow::Result<()> {
    if path.is_dir() {
        bail!("{} is a directory: give the backup's file name", path.display());
    }
    if path.exists() && !force {
        bail!("{} exists: pass --force to replace it", path.display());
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(a), Ok(b)) if a == b)
}

fn parent(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// `.<name>.<purpose>-<pid>.tmp` beside its destination, mode 0600; removed when dropped unless
/// it was put in place.
struct TempFile {
    path: PathBuf,
    placed: bool,
}

impl TempFile {
    fn create(destination: &Path, purpose: &str) -> anyhow::Result<Self> {
        let name = destination.file_name().with_context(|| format!("{} names no file", destination.display()))?;
        let mut temp = std::ffi::OsString::from(".");
        temp.push(name);
        temp.push(format!(".{purpose}-{}.tmp", std::process::id()));
        let path = parent(destination).join(temp);
        remove_if_present(&path)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path, placed: false })
    }

    fn file(&self) -> anyhow::Result<File> {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))
    }

    /// Flushes the file's content to the disk.
    fn sync(&self) -> anyhow::Result<()> {
        self.file()?.sync_all().with_context(|| format!("syncing {}", self.path.display()))
    }

    /// Gives the file `like`'s owner, so the daemon's user can write it when root restores.
    #[cfg(unix)]
    fn take_owner_of(&self, like: &Path) -> anyhow::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let theirs = std::fs::metadata(like).with_context(|| format!("reading {}", like.display()))?;
        let file = self.file()?;
        let ours = file.metadata()?;
        if (ours.uid(), ours.gid()) != (theirs.uid(), theirs.gid())
            && let Err(e) = std::os::unix::fs::fchown(&file, Some(theirs.uid()), Some(theirs.gid()))
        {
            bail!(
                "cannot give the restored database the owner of {} (uid {}, gid {}): {e}; run restore as that user or as root",
                like.display(),
                theirs.uid(),
                theirs.gid()
            );
        }
        Ok(())
    }

    #[cfg(not(unix))]
    fn take_owner_of(&self, _like: &Path) -> anyhow::Result<()> {
        Ok(())
    }

    /// Gives the file `like`'s permissions.
    fn take_mode_of(&self, like: &Path) -> anyhow::Result<()> {
        let theirs = std::fs::metadata(like).with_context(|| format!("reading {}", like.display()))?;
        std::fs::set_permissions(&self.path, theirs.permissions())
            .with_context(|| format!("chmod {}", self.path.display()))
    }

    /// Renames the file to `destination` and makes the rename durable; returns its size.
    fn place(mut self, destination: &Path) -> anyhow::Result<u64> {
        let bytes = std::fs::metadata(&self.path)?.len();
        std::fs::rename(&self.path, destination)
            .with_context(|| format!("renaming {} to {}", self.path.display(), destination.display()))?;
        self.placed = true;
        #[cfg(unix)]
        File::open(parent(destination))
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("syncing the directory {}", parent(destination).display()))?;
        Ok(bytes)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.placed {
            for suffix in ["", "-journal", "-wal", "-shm"] {
                let _ = std::fs::remove_file(sibling(&self.path, suffix));
            }
        }
    }
}
