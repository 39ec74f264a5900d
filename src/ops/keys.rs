//! `hookd keys …`: create, list, re-role and revoke API keys on the database file.

use clap::Subcommand;

use super::{DataDir, audit_cli, audit_cli_with, open_existing};
use crate::domain::time::{Millis, format_ms, format_opt, now_ms};
use crate::domain::{KeyId, Role};
use crate::store;
use crate::store::keys::{self, NewKey};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (only this once).
    Create {
        #[arg(long)]
        name: String,
        /// What the key may do: admin, integration, kiosk or viewer.
        #[arg(long, default_value = "admin", value_parser = parse_role)]
        role: Role,
        /// Refuse the key (401) from this many days on.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in_days: Option<u32>,
    },
    /// List keys (never their secret part).
    List,
    /// Give a key another role; a running server applies it within a second.
    Role {
        id: String,
        #[arg(value_parser = parse_role)]
        role: Role,
    },
    /// Revoke a key: requests with it get 401 from then on.
    Revoke { id: String },
}

const DAY_MS: Millis = 24 * 60 * 60 * 1000;

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| {
        let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        format!("`{text}` is not a role; use one of {}", names.join(", "))
    })
}

fn parse_key_id(id: &str) -> anyhow::Result<KeyId> {
    id.parse()
        .map_err(|_| anyhow::anyhow!("`{id}` is not a key id"))
}

/// `NotFound` from the store, said for a key.
fn no_such_key(id: KeyId) -> impl FnOnce(store::StoreError) -> anyhow::Error {
    move |e| match e {
        store::StoreError::NotFound => anyhow::anyhow!("no key with id {id}"),
        other => other.into(),
    }
}

/// Runs `hookd keys …`.
pub fn run(command: KeysCommand, data: &DataDir) -> anyhow::Result<()> {
    let mut conn = open_existing(data)?;
    match command {
        KeysCommand::Create {
            name,
            role,
            expires_in_days,
        } => {
            let name = name.trim();
            anyhow::ensure!(
                !name.is_empty() && name.chars().count() <= 200,
                "--name must be 1 to 200 characters"
            );
            let now = now_ms();
            let new = NewKey {
                name,
                role,
                expires_at: expires_in_days.map(|days| now + Millis::from(days) * DAY_MS),
            };
            let (key, secret) = store::with_transaction(&mut conn, |c| {
                let created = keys::create(c, &new, now)?;
                let detail = serde_json::json!({
                    "role": role.as_str(),
                    "expiresAt": format_opt(new.expires_at),
                });
                audit_cli_with(
                    c,
                    "key.created",
                    "api_key",
                    created.0.id.to_string(),
                    detail,
                )?;
                Ok(created)
            })?;
            println!("{secret}");
            let until = key
                .expires_at
                .map(|at| format!(", until {}", format_ms(at)))
                .unwrap_or_default();
            eprintln!(
                "created {} key {} ({}{until}); store it now, it is not shown again",
                key.role, key.id, key.name
            );
        }
        KeysCommand::List => {
            let now = now_ms();
            println!(
                "{:<36}  {:<11}  {:<24}  {:<24}  {:<24}  NAME",
                "ID", "ROLE", "CREATED", "EXPIRES", "LAST USED"
            );
            for key in keys::list(&conn)? {
                let expires = match (key.revoked_at, key.expires_at) {
                    (Some(at), _) => format!("revoked {}", format_ms(at)),
                    (None, Some(at)) if at <= now => format!("expired {}", format_ms(at)),
                    (None, Some(at)) => format_ms(at),
                    (None, None) => "never".into(),
                };
                let last_used = key
                    .last_used_at
                    .map(format_ms)
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<36}  {:<11}  {:<24}  {:<24}  {:<24}  {}",
                    key.id,
                    key.role.as_str(),
                    format_ms(key.created_at),
                    expires,
                    last_used,
                    key.name
                );
            }
        }
        KeysCommand::Role { id, role } => {
            let key_id = parse_key_id(&id)?;
            let before = store::with_transaction(&mut conn, |c| {
                let before = keys::set_role(c, key_id, role)?;
                if before != role {
                    let detail = serde_json::json!({"from": before.as_str(), "to": role.as_str()});
                    audit_cli_with(c, "key.role_changed", "api_key", key_id.to_string(), detail)?;
                }
                Ok(before)
            })
            .map_err(no_such_key(key_id))?;
            if before == role {
                eprintln!("key {key_id} already has the role {role}");
            } else {
                eprintln!("key {key_id}: role {before} -> {role}");
            }
        }
        KeysCommand::Revoke { id } => {
            let key_id = parse_key_id(&id)?;
            store::with_transaction(&mut conn, |c| {
                keys::revoke(c, key_id, now_ms())?;
                audit_cli(c, "key.revoked", "api_key", key_id.to_string())
            })
            .map_err(no_such_key(key_id))?;
            eprintln!("revoked key {key_id}");
        }
    }
    Ok(())
}
