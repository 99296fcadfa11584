//! Small helpers every component uses: poison-tolerant locking and the
//! hasher for the broker's own ids.

use std::collections::HashMap;
use std::sync::Mutex;

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded structures stay consistent across a panic in a holder
    // (no method leaves them half-updated before a call that can panic).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Hashes the broker's own ids: sequential numbers no client chooses, so
/// one multiplication spreads them (a lookup per delivery on the fan-out
/// path, where SipHash cost more than the rest of the lookup).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(26) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by the broker's ids.
pub(crate) type IdMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IdHasher>>;
