//! `hookd keys …`: create, list and revoke API keys on the database file.

use clap::Subcommand;

use super::{DataDir, audit_cli, open_existing};
use crate::domain::KeyId;
use crate::domain::time::{format_ms, now_ms};
use crate::store::{self, keys};

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
pub fn run(command: KeysCommand, data: &DataDir) -> anyhow::Result<()> {
    let mut conn = open_existing(data)?;
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
