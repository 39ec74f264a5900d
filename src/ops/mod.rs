//! The operators' room: what the people who keep hookd running use besides the API.
//!
//! - [`status`] — `hookd status`: the queue summary per webhook.
//! - [`commands`] — `hookd deliveries …` and `hookd webhooks …`: inspect and repair.
//! - [`keys`] — `hookd keys …`: create, list and revoke API keys.
//! - [`backup`] — `hookd backup --to FILE`: an online copy of the database.
//! - [`retention`] — the server's background job that forgets finished deliveries.
//! - [`table`] — aligned text tables and human durations for the terminal.
//!
//! The commands open the database file directly, whether a server runs or not: SQLite (WAL,
//! busy timeout) arbitrates, each change is one transaction, and a control signal tells a
//! running server to act on it at once (a stopped one acts at its next start). They call the
//! store's functions and print the API's views, so `--json` output matches the admin API.
//! Every change is written to the audit log as key `cli`.

pub mod backup;
pub mod commands;
pub mod keys;
pub mod retention;
pub mod status;
pub mod table;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rusqlite::Connection;

use crate::domain::time::now_ms;
use crate::store;

/// The database the command works on.
#[derive(Debug, Clone, Args)]
pub struct DataDir {
    /// Folder of the database.
    #[arg(
        long,
        env = "HOOKD_DATA_DIR",
        default_value = "hookd-data",
        global = true
    )]
    pub data_dir: PathBuf,
}

/// Writes an audit entry for an action taken on the command line.
pub fn audit_cli(
    conn: &rusqlite::Connection,
    action: &str,
    target_type: &str,
    target_id: String,
) -> store::Result<()> {
    audit_cli_with(conn, action, target_type, target_id, serde_json::json!({}))
}

/// [`audit_cli`] with facts about the change (never a secret).
pub fn audit_cli_with(
    conn: &rusqlite::Connection,
    action: &str,
    target_type: &str,
    target_id: String,
    detail: serde_json::Value,
) -> store::Result<()> {
    let actor = store::audit::Actor("cli".into());
    let entry = store::audit::Entry {
        actor: &actor,
        action,
        target_type,
        target_id,
        detail,
    };
    store::audit::record(conn, &entry, now_ms())
}

/// The database of `data`, which must already exist: an operator command pointed at the
/// wrong folder should say so, not create an empty database there.
pub fn open_existing(data: &DataDir) -> anyhow::Result<Connection> {
    let path = store::database_path(&data.data_dir);
    anyhow::ensure!(
        path.exists(),
        "no hookd database at {} (set --data-dir or HOOKD_DATA_DIR)",
        path.display()
    );
    store::open_standalone(&data.data_dir).with_context(|| format!("opening {}", path.display()))
}

/// Parses an id given on the command line, naming what was expected.
pub fn parse_id<T: std::str::FromStr>(text: &str, what: &str) -> anyhow::Result<T> {
    text.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("`{text}` is not a {what} id"))
}
