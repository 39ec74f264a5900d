//! The stored API keys, kept in memory by their hash.
//!
//! Keys are few and every `/api/*` request presents one, so checking a key is a hash and a
//! map lookup: no pooled database connection per request, and none for a bogus key (the
//! cheapest request an attacker can send). The ring is loaded at start and reloaded when
//! `hookd keys create` or `revoke` changed the table, which the server's housekeeping
//! loop notices within a quarter of a second ([`KeyRing::refresh`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::domain::KeyId;
use crate::store::{self, Store, keys};

/// The unrevoked keys, by SHA-256. Cheap to clone.
#[derive(Clone, Default)]
pub struct KeyRing(Arc<RwLock<Ring>>);

#[derive(Default)]
struct Ring {
    /// `keys::version` when loaded.
    version: (i64, i64),
    by_hash: HashMap<String, KeyId>,
}

impl KeyRing {
    /// The keys stored now.
    pub async fn load(store: &Store) -> store::Result<Self> {
        let ring = Self::default();
        ring.reload(store).await?;
        Ok(ring)
    }

    /// The key whose clear text is `presented`, if it is stored and not revoked.
    pub fn find(&self, presented: &str) -> Option<KeyId> {
        let hash = keys::hash(presented);
        self.read().by_hash.get(&hash).copied()
    }

    /// Reloads the ring if a key was created or revoked since it was loaded.
    pub async fn refresh(&self, store: &Store) -> store::Result<()> {
        let version = store.read(keys::version).await?;
        if version != self.read().version {
            self.reload(store).await?;
        }
        Ok(())
    }

    async fn reload(&self, store: &Store) -> store::Result<()> {
        let (version, live) = store
            .read(|c| Ok((keys::version(c)?, keys::live(c)?)))
            .await?;
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Ring {
            version,
            by_hash: live.into_iter().collect(),
        };
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::now_ms;
    use crate::telemetry::Telemetry;

    #[tokio::test]
    async fn keys_are_checked_from_memory_and_reloaded_when_the_table_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &Telemetry::new()).unwrap();
        let (first, first_secret) = store
            .write(|c| keys::create(c, "kiosk", now_ms()))
            .await
            .unwrap();
        let ring = KeyRing::load(&store).await.unwrap();
        let (second, second_secret) = store
            .write(|c| keys::create(c, "his", now_ms()))
            .await
            .unwrap();
        assert_eq!(ring.find(&second_secret), None, "not reloaded yet");
        ring.refresh(&store).await.unwrap();
        assert_eq!(ring.find(&second_secret), Some(second.id));
        store
            .write(move |c| keys::revoke(c, first.id, now_ms()))
            .await
            .unwrap();
        ring.refresh(&store).await.unwrap();
        assert_eq!(ring.find(&first_secret), None, "revoked");
        // With the database gone, keys are still checked: from memory, no query.
        store.close().await;
        drop(store);
        drop(dir);
        assert_eq!(ring.find(&second_secret), Some(second.id));
        assert_eq!(ring.find("hkd_bogus"), None);
    }
}
