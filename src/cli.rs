//! The `hookd` command line. `serve` runs the server; the other commands work on the
//! database file directly, whether a server is running or not (SQLite arbitrates), and
//! tell a running server about their changes through control signals.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::ServeArgs;
use crate::domain::KeyId;
use crate::domain::time::{format_ms, now_ms};
use crate::ops;
use crate::store::{self, keys};

#[derive(Debug, Parser)]
#[command(
    name = "hookd",
    version,
    about = "Survey platform with durable, signed webhook delivery"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
        #[command(flatten)]
        data: DataDir,
    },
    /// Summary of the delivery queue per webhook (works with the server stopped too).
    Status {
        #[command(flatten)]
        args: ops::status::StatusArgs,
        #[command(flatten)]
        data: DataDir,
    },
    /// Inspect deliveries and send them again.
    Deliveries {
        #[command(subcommand)]
        command: ops::commands::DeliveriesCommand,
        #[command(flatten)]
        data: DataDir,
    },
    /// List webhooks and re-enable them.
    Webhooks {
        #[command(subcommand)]
        command: ops::commands::WebhooksCommand,
        #[command(flatten)]
        data: DataDir,
    },
    /// Copy the database to a new file while the server keeps running.
    Backup {
        /// The backup file to create.
        #[arg(long)]
        to: PathBuf,
        #[command(flatten)]
        data: DataDir,
    },
}

/// Runs a command other than `serve`.
pub fn run_command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) => anyhow::bail!("`serve` runs through the server's own start-up"),
        Command::Keys { command, data } => run_keys(command, &data),
        Command::Status { args, data } => ops::status::run(&args, &data),
        Command::Deliveries { command, data } => ops::commands::run_deliveries(command, &data),
        Command::Webhooks { command, data } => ops::commands::run_webhooks(command, &data),
        Command::Backup { to, data } => ops::backup::run(&to, &data),
    }
}

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

impl DataDir {
    /// A standalone connection with the schema up to date.
    pub fn connect(&self) -> anyhow::Result<rusqlite::Connection> {
        store::open_pool(&self.data_dir).context("opening the database")?;
        let conn = rusqlite::Connection::open(store::database_path(&self.data_dir))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch("PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL;")?;
        Ok(conn)
    }
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (only this once).
    Create {
        #[arg(long)]
        name: String,
    },
    /// List keys (never their secret part).
    List,
    /// Revoke a key: requests with it get 401 from then on.
    Revoke { id: String },
}

/// Runs `hookd keys …`.
pub fn run_keys(command: KeysCommand, data: &DataDir) -> anyhow::Result<()> {
    let mut conn = data.connect()?;
    match command {
        KeysCommand::Create { name } => {
            let name = name.trim();
            anyhow::ensure!(
                !name.is_empty() && name.chars().count() <= 200,
                "--name must be 1 to 200 characters"
            );
            let (key, secret) = store::with_transaction(&mut conn, |c| {
                let created = keys::create(c, name, now_ms())?;
                audit_cli(c, "key.created", "api_key", created.0.id.to_string())?;
                Ok(created)
            })?;
            println!("{secret}");
            eprintln!(
                "created key {} ({}); store it now, it is not shown again",
                key.id, key.name
            );
        }
        KeysCommand::List => {
            println!("{:<36}  {:<24}  {:<24}  NAME", "ID", "CREATED", "REVOKED");
            for key in keys::list(&conn)? {
                let revoked = key.revoked_at.map(format_ms).unwrap_or_else(|| "-".into());
                println!(
                    "{:<36}  {:<24}  {:<24}  {}",
                    key.id,
                    format_ms(key.created_at),
                    revoked,
                    key.name
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let key_id: KeyId = id
                .parse()
                .map_err(|_| anyhow::anyhow!("`{id}` is not a key id"))?;
            store::with_transaction(&mut conn, |c| {
                keys::revoke(c, key_id, now_ms())?;
                audit_cli(c, "key.revoked", "api_key", key_id.to_string())
            })
            .map_err(|e| match e {
                store::StoreError::NotFound => anyhow::anyhow!("no key with id {key_id}"),
                other => other.into(),
            })?;
            eprintln!("revoked key {key_id}");
        }
    }
    Ok(())
}

/// Writes an audit entry for an action taken on the command line.
pub fn audit_cli(
    conn: &rusqlite::Connection,
    action: &str,
    target_type: &str,
    target_id: String,
) -> store::Result<()> {
    let actor = store::audit::Actor("cli".into());
    let entry = store::audit::Entry {
        actor: &actor,
        action,
        target_type,
        target_id,
        detail: serde_json::json!({}),
    };
    store::audit::record(conn, &entry, now_ms())
}
