//! Login sessions: a random id per login, kept on the server with its expiry, so a session
//! ends at logout or after [`LIFETIME`], and a restart logs everyone out. The cookie holds
//! the id only; the server keeps its SHA-256, so neither a map lookup's timing nor a memory
//! dump gives a usable id.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long a login lasts (the cookie's `Max-Age` too).
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Most sessions kept at once: past it the one nearest its end is dropped, so logins in a
/// loop cannot grow the map without bound.
const MAX_SESSIONS: usize = 10_000;

#[derive(Default)]
pub struct Sessions {
    by_digest: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Sessions {
    /// A new session's id (32 random bytes in hex), valid until [`LIFETIME`] from `now`.
    pub fn start(&self, now: Instant) -> Result<String, getrandom::Error> {
        let mut id = [0u8; 32];
        getrandom::getrandom(&mut id)?;
        let id = hex::encode(id);
        let mut map = self.map();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, ends| *ends > now);
        }
        if map.len() >= MAX_SESSIONS {
            let soonest = map.iter().min_by_key(|(_, ends)| **ends).map(|(k, _)| *k);
            if let Some(k) = soonest {
                map.remove(&k);
            }
        }
        map.insert(digest(&id), now + LIFETIME);
        Ok(id)
    }

    /// Whether `id` names a live session; an expired one is forgotten.
    pub fn is_live(&self, id: &str, now: Instant) -> bool {
        let key = digest(id);
        let mut map = self.map();
        match map.get(&key) {
            Some(ends) if *ends > now => true,
            Some(_) => {
                map.remove(&key);
                false
            }
            None => false,
        }
    }

    /// Ends the session `id` (logout); unknown ids are ignored.
    pub fn end(&self, id: &str) {
        self.map().remove(&digest(id));
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Instant>> {
        self.by_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_random_lives_until_its_expiry_and_ends_at_logout() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let a = sessions.start(t0).unwrap();
        let b = sessions.start(t0).unwrap();
        assert_ne!(a, b, "each login gets its own id");
        assert_eq!(a.len(), 64);
        assert!(sessions.is_live(&a, t0 + LIFETIME - Duration::from_secs(1)));
        assert!(!sessions.is_live(&a, t0 + LIFETIME), "expired");
        assert!(!sessions.is_live(&a, t0), "an expired session is forgotten");
        sessions.end(&b);
        assert!(!sessions.is_live(&b, t0), "logout ends it");
        assert!(!sessions.is_live("guess", t0));
    }

    #[test]
    fn the_map_is_bounded() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let first = sessions.start(t0).unwrap();
        for i in 0..MAX_SESSIONS {
            sessions
                .start(t0 + Duration::from_millis(1 + i as u64))
                .unwrap();
        }
        assert_eq!(sessions.map().len(), MAX_SESSIONS);
        assert!(!sessions.is_live(&first, t0), "the oldest made room");
    }
}
