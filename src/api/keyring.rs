//! The stored API keys, kept in memory by their hash.
//!
//! Keys are few and every `/api/*` request presents one, so checking a key is a hash and a
//! map lookup: no pooled database connection per request, and none for a bogus key (the
//! cheapest request an attacker can send). The ring is loaded at start and reloaded when
//! `hookd keys create`, `revoke` or `role` changed the table, which the server's
//! housekeeping loop notices within a quarter of a second ([`KeyRing::refresh`]).
//!
//! The ring also remembers when each key was last used, to within a minute, and which
//! keys have expired; the housekeeping loop writes both back ([`KeyRing::take_uses`],
//! [`KeyRing::newly_expired`]), so a request never waits for a write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use crate::domain::time::Millis;
use crate::domain::{KeyId, Role};
use crate::store::keys::LiveKey;
use crate::store::{self, Store, keys};

/// How precisely a key's last use is kept: it is written at most once per this.
pub const LAST_USED_RESOLUTION_MS: Millis = 60_000;

/// The unrevoked keys, by SHA-256. Cheap to clone.
#[derive(Clone, Default)]
pub struct KeyRing(Arc<RwLock<Ring>>);

#[derive(Default)]
struct Ring {
    /// `keys::version` when loaded.
    version: (i64, i64),
    by_hash: HashMap<String, Arc<Held>>,
}

/// One key in memory.
struct Held {
    id: KeyId,
    role: Role,
    expires_at: Option<Millis>,
    /// The last use noted (0 for never); moves forward once per resolution at most.
    last_used: AtomicI64,
    /// A use noted here and not yet written.
    unwritten_use: AtomicBool,
    expiry_recorded: AtomicBool,
}

/// A key that authenticated a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub id: KeyId,
    pub role: Role,
}

impl KeyRing {
    /// The keys stored now.
    pub async fn load(store: &Store) -> store::Result<Self> {
        let ring = Self::default();
        ring.reload(store).await?;
        Ok(ring)
    }

    /// The key whose clear text is `presented`, if it is stored, not revoked and not
    /// expired at `now`. Notes the use.
    pub fn find(&self, presented: &str, now: Millis) -> Option<Found> {
        let hash = keys::hash(presented);
        let ring = self.read();
        let held = ring.by_hash.get(&hash)?;
        if held.expires_at.is_some_and(|at| at <= now) {
            return None;
        }
        let last = held.last_used.load(Ordering::Relaxed);
        if now - last >= LAST_USED_RESOLUTION_MS
            && held
                .last_used
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            held.unwritten_use.store(true, Ordering::Release);
        }
        Some(Found {
            id: held.id,
            role: held.role,
        })
    }

    /// The uses noted since the last call, to be written to the table.
    pub fn take_uses(&self) -> Vec<(KeyId, Millis)> {
        self.read()
            .by_hash
            .values()
            .filter(|held| held.unwritten_use.swap(false, Ordering::Acquire))
            .map(|held| (held.id, held.last_used.load(Ordering::Relaxed)))
            .collect()
    }

    /// Uses [`Self::take_uses`] handed out that could not be written: kept for next time.
    pub fn give_back_uses(&self, uses: &[(KeyId, Millis)]) {
        let ring = self.read();
        for held in ring.by_hash.values() {
            if uses.iter().any(|(id, _)| *id == held.id) {
                held.unwritten_use.store(true, Ordering::Release);
            }
        }
    }

    /// Keys that have expired by `now` and whose expiry the audit log has not noted yet.
    pub fn newly_expired(&self, now: Millis) -> Vec<(KeyId, Millis)> {
        self.read()
            .by_hash
            .values()
            .filter(|held| !held.expiry_recorded.load(Ordering::Acquire))
            .filter_map(|held| {
                let at = held.expires_at.filter(|at| *at <= now)?;
                Some((held.id, at))
            })
            .collect()
    }

    /// The audit log has noted these keys' expiry.
    pub fn expiry_recorded(&self, ids: &[KeyId]) {
        let ring = self.read();
        for held in ring.by_hash.values() {
            if ids.contains(&held.id) {
                held.expiry_recorded.store(true, Ordering::Release);
            }
        }
    }

    /// Reloads the ring if a key was created, revoked or given a new role since it was
    /// loaded.
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
        let mut ring = self.0.write().unwrap_or_else(|e| e.into_inner());
        let previous: HashMap<KeyId, Arc<Held>> = ring
            .by_hash
            .values()
            .map(|held| (held.id, held.clone()))
            .collect();
        let by_hash = live
            .into_iter()
            .map(|key| {
                let held = Held::new(&key, previous.get(&key.id).map(|h| &**h));
                (key.hash, Arc::new(held))
            })
            .collect();
        *ring = Ring { version, by_hash };
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl Held {
    /// A key as stored, keeping what memory knew of it before a reload (a use not yet
    /// written, a noted expiry).
    fn new(key: &LiveKey, before: Option<&Held>) -> Self {
        let stored_use = key.last_used_at.unwrap_or(0);
        let (last_used, unwritten_use, expiry_recorded) = match before {
            Some(held) => (
                held.last_used.load(Ordering::Relaxed).max(stored_use),
                held.unwritten_use.load(Ordering::Acquire),
                key.expiry_recorded || held.expiry_recorded.load(Ordering::Acquire),
            ),
            None => (stored_use, false, key.expiry_recorded),
        };
        Self {
            id: key.id,
            role: key.role,
            expires_at: key.expires_at,
            last_used: AtomicI64::new(last_used),
            unwritten_use: AtomicBool::new(unwritten_use),
            expiry_recorded: AtomicBool::new(expiry_recorded),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::now_ms;
    use crate::store::keys::NewKey;
    use crate::telemetry::Telemetry;

    fn new_key(name: &str, role: Role, expires_at: Option<Millis>) -> NewKey<'_> {
        NewKey {
            name,
            role,
            expires_at,
        }
    }

    #[tokio::test]
    async fn keys_are_checked_from_memory_and_reloaded_when_the_table_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &Telemetry::new()).unwrap();
        let now = now_ms();
        let (first, first_secret) = store
            .write(move |c| keys::create(c, &new_key("kiosk", Role::Kiosk, None), now))
            .await
            .unwrap();
        let ring = KeyRing::load(&store).await.unwrap();
        let (second, second_secret) = store
            .write(move |c| keys::create(c, &new_key("his", Role::Admin, None), now))
            .await
            .unwrap();
        assert_eq!(ring.find(&second_secret, now), None, "not reloaded yet");
        ring.refresh(&store).await.unwrap();
        let found = ring.find(&second_secret, now).unwrap();
        assert_eq!((found.id, found.role), (second.id, Role::Admin));
        store
            .write(move |c| keys::set_role(c, second.id, Role::Viewer))
            .await
            .unwrap();
        ring.refresh(&store).await.unwrap();
        assert_eq!(ring.find(&second_secret, now).unwrap().role, Role::Viewer);
        store
            .write(move |c| keys::revoke(c, first.id, now))
            .await
            .unwrap();
        ring.refresh(&store).await.unwrap();
        assert_eq!(ring.find(&first_secret, now), None, "revoked");
        // With the database gone, keys are still checked: from memory, no query.
        store.close().await;
        drop(store);
        drop(dir);
        assert_eq!(ring.find(&second_secret, now).unwrap().id, second.id);
        assert_eq!(ring.find("hkd_bogus", now), None);
    }

    #[tokio::test]
    async fn a_key_is_refused_from_its_expiry_on_and_its_expiry_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &Telemetry::new()).unwrap();
        let now = now_ms();
        let expires = now + 1_000;
        let (key, secret) = store
            .write(move |c| keys::create(c, &new_key("temp", Role::Admin, Some(expires)), now))
            .await
            .unwrap();
        let ring = KeyRing::load(&store).await.unwrap();
        assert!(ring.find(&secret, expires - 1).is_some());
        assert!(ring.newly_expired(expires - 1).is_empty());
        assert_eq!(ring.find(&secret, expires), None, "expired");
        assert_eq!(ring.newly_expired(expires), vec![(key.id, expires)]);
        ring.expiry_recorded(&[key.id]);
        assert!(ring.newly_expired(expires + 1).is_empty());
    }

    #[tokio::test]
    async fn uses_are_handed_out_at_most_once_a_minute_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &Telemetry::new()).unwrap();
        let now = now_ms();
        let (key, secret) = store
            .write(move |c| keys::create(c, &new_key("his", Role::Integration, None), now))
            .await
            .unwrap();
        let ring = KeyRing::load(&store).await.unwrap();
        assert!(ring.take_uses().is_empty(), "never used");
        for offset in 0..100 {
            ring.find(&secret, now + offset * 100).unwrap();
        }
        assert_eq!(
            ring.take_uses(),
            vec![(key.id, now)],
            "one use in ten seconds"
        );
        assert!(ring.take_uses().is_empty());
        ring.find(&secret, now + 30_000).unwrap();
        assert!(ring.take_uses().is_empty(), "within the minute");
        ring.find(&secret, now + LAST_USED_RESOLUTION_MS).unwrap();
        let uses = ring.take_uses();
        assert_eq!(uses, vec![(key.id, now + LAST_USED_RESOLUTION_MS)]);
        ring.give_back_uses(&uses);
        // A reload keeps a use not yet written.
        store
            .write(move |c| keys::set_role(c, key.id, Role::Viewer))
            .await
            .unwrap();
        ring.refresh(&store).await.unwrap();
        assert_eq!(ring.take_uses(), uses);
    }
}
