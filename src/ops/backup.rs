//! `hookd backup --to FILE`: a consistent copy of the database, taken with SQLite's online
//! backup while a server may keep serving and delivering. The copy is written beside the
//! target under a `.partial` name and renamed when complete and checked, so a file at the
//! target path is always a whole backup.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{DataDir, audit_cli, open_existing};
use crate::store::backup::{Pace, backup_to};

pub fn run(to: &Path, data: &DataDir) -> anyhow::Result<()> {
    anyhow::ensure!(
        !to.exists(),
        "{} already exists; back up to a new file",
        to.display()
    );
    let conn = open_existing(data)?;
    let partial = partial_path(to);
    remove_leftovers(&partial);
    let pages = match backup_to(&conn, &partial, Pace::default()) {
        Ok(pages) => pages,
        Err(error) => {
            remove_leftovers(&partial);
            return Err(error).with_context(|| format!("backing up to {}", to.display()));
        }
    };
    std::fs::rename(&partial, to)
        .with_context(|| format!("moving the backup to {}", to.display()))?;
    audit_cli(
        &conn,
        "database.backed_up",
        "database",
        to.display().to_string(),
    )?;
    eprintln!(
        "backed up {} ({pages} pages) to {}",
        crate::store::database_path(&data.data_dir).display(),
        to.display()
    );
    Ok(())
}

fn partial_path(to: &Path) -> PathBuf {
    let mut name = to.file_name().unwrap_or_default().to_owned();
    name.push(".partial");
    to.with_file_name(name)
}

/// Removes what an interrupted backup may have left (the file and its journal).
fn remove_leftovers(partial: &Path) {
    let mut journal = partial.as_os_str().to_owned();
    journal.push("-journal");
    let _ = std::fs::remove_file(partial);
    let _ = std::fs::remove_file(PathBuf::from(journal));
}
