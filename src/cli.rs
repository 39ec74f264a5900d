//! The `hookd` command line: it parses arguments and dispatches. `serve` runs the server;
//! the other commands ([`ops`]) work on the database file directly, whether a server is
//! running or not (SQLite arbitrates), and tell a running server about their changes
//! through control signals.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::ServeArgs;
use crate::ops::{self, DataDir};

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
        command: ops::keys::KeysCommand,
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
        Command::Keys { command, data } => ops::keys::run(command, &data),
        Command::Status { args, data } => ops::status::run(&args, &data),
        Command::Deliveries { command, data } => ops::commands::run_deliveries(command, &data),
        Command::Webhooks { command, data } => ops::commands::run_webhooks(command, &data),
        Command::Backup { to, data } => ops::backup::run(&to, &data),
    }
}
