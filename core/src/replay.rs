//! Replay protection by delivery id: a repeat of a delivery already accepted within the
//! window is answered 2xx and not delivered again. Vendors retry with the same id (GitHub's
//! `X-GitHub-Delivery`, Stripe's `evt_...`, `webhook-id`), and an attacker replaying a captured
//! request cannot change it without breaking the signature. The [`ReplayGuard`] trait is the
//! seam for the durable store, which will keep claims across restarts.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::verify::timestamp::millis;

/// Whether a delivery id was seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First time within the window: deliver it.
    New,
    /// Already accepted within the window: acknowledge, do not deliver.
    Repeat,
}

/// Remembers accepted delivery ids per source for a window.
pub trait ReplayGuard: Send + Sync {
    /// Records `key` for `source` and says whether it is new. Atomic: of two concurrent claims
    /// of the same key exactly one is `New`.
    fn claim(&self, source: &str, key: &str, now: SystemTime) -> Claim;

    /// Forgets a claim whose event could not be queued, so the vendor's retry is delivered.
    fn release(&self, source: &str, key: &str);
}

const SHARDS: usize = 16;

/// A claim's key: SHA-256 of source and id, cut to 128 bits. Fixed size whatever the id's
/// length, and not open to crafted collisions. Two `u64`s rather than a `u128`, whose 16-byte
/// alignment padded each stored claim (fingerprint and expiry) from 24 bytes to 32: a third
/// more memory per claim, at two claims per signed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    /// Hashes the claim within its shard.
    high: u64,
    /// Picks the shard.
    low: u64,
}

impl std::hash::Hash for Fingerprint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.high);
    }
}

fn fingerprint(source: &str, key: &str) -> Fingerprint {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    let half = |i: usize| u64::from_le_bytes(digest[i..i + 8].try_into().expect("8 bytes"));
    Fingerprint {
        high: half(8),
        low: half(0),
    }
}

/// Hashes a fingerprint by its high 64 bits (the low ones pick the shard): they are already
/// SHA-256 output, so SipHash's protection against crafted collisions would add only time.
#[derive(Default)]
struct FingerprintHasher(u64);

impl std::hash::Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not used by `Fingerprint`'s `Hash`; kept correct for any other input.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, high: u64) {
        self.0 = high;
    }
}

#[derive(Default)]
struct Shard {
    /// Fingerprint → expiry (Unix ms).
    live: HashMap<Fingerprint, i64, std::hash::BuildHasherDefault<FingerprintHasher>>,
    /// Claims in arrival order, for expiry and the capacity bound.
    order: VecDeque<(Fingerprint, i64)>,
}

impl Shard {
    fn pop_front(&mut self) {
        if let Some((fp, expires)) = self.order.pop_front() {
            // Only if not released and re-claimed since (which would carry a later expiry).
            if self.live.get(&fp) == Some(&expires) {
                self.live.remove(&fp);
            }
        }
    }
}

/// The in-memory guard: bounded, sharded, expiring. When full, the oldest claims are dropped
/// before their window ends (counted in [`MemoryReplayGuard::evicted_early`]), so memory stays
/// bounded under any load.
pub struct MemoryReplayGuard {
    shards: Vec<Mutex<Shard>>,
    window_ms: i64,
    per_shard: usize,
    evicted_early: AtomicU64,
}

impl MemoryReplayGuard {
    /// A guard remembering ids for `window`, holding at most about `capacity` of them.
    pub fn new(window: Duration, capacity: usize) -> Self {
        MemoryReplayGuard {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            window_ms: window.as_millis().min(i64::MAX as u128) as i64,
            per_shard: capacity.div_ceil(SHARDS).max(1),
            evicted_early: AtomicU64::new(0),
        }
    }

    /// Claims dropped for space before their window ended.
    pub fn evicted_early(&self) -> u64 {
        self.evicted_early.load(Ordering::Relaxed)
    }

    fn shard(&self, fp: Fingerprint) -> &Mutex<Shard> {
        &self.shards[(fp.low as usize) % SHARDS]
    }
}

impl ReplayGuard for MemoryReplayGuard {
    fn claim(&self, source: &str, key: &str, now: SystemTime) -> Claim {
        let fp = fingerprint(source, key);
        let now = millis(now);
        let mut shard = self.shard(fp).lock().expect("replay shard poisoned");
        while shard.order.front().is_some_and(|(_, expires)| *expires <= now) {
            shard.pop_front();
        }
        if shard.live.get(&fp).is_some_and(|expires| *expires > now) {
            return Claim::Repeat;
        }
        let expires = now.saturating_add(self.window_ms);
        shard.live.insert(fp, expires);
        shard.order.push_back((fp, expires));
        while shard.order.len() > self.per_shard {
            shard.pop_front();
            self.evicted_early.fetch_add(1, Ordering::Relaxed);
        }
        Claim::New
    }

    fn release(&self, source: &str, key: &str) {
        let fp = fingerprint(source, key);
        self.shard(fp)
            .lock()
            .expect("replay shard poisoned")
            .live
            .remove(&fp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::timestamp::from_millis;

    #[test]
    fn repeats_within_the_window_are_recognised_per_source() {
        let g = MemoryReplayGuard::new(Duration::from_secs(60), 1000);
        let t0 = from_millis(1_000_000);
        assert_eq!(g.claim("github", "d1", t0), Claim::New);
        assert_eq!(g.claim("github", "d1", t0), Claim::Repeat);
        assert_eq!(g.claim("stripe", "d1", t0), Claim::New, "sources are separate");
        assert_eq!(g.claim("github", "d1", from_millis(1_059_999)), Claim::Repeat);
        assert_eq!(
            g.claim("github", "d1", from_millis(1_060_000)),
            Claim::New,
            "window over"
        );
    }

    #[test]
    fn release_lets_the_retry_through() {
        let g = MemoryReplayGuard::new(Duration::from_secs(60), 1000);
        let t0 = from_millis(1_000_000);
        assert_eq!(g.claim("s", "d", t0), Claim::New);
        g.release("s", "d");
        assert_eq!(g.claim("s", "d", t0), Claim::New);
        assert_eq!(g.claim("s", "d", t0), Claim::Repeat);
    }

    #[test]
    fn a_claim_is_stored_in_24_bytes() {
        assert_eq!(std::mem::size_of::<(Fingerprint, i64)>(), 24);
    }

    #[test]
    fn capacity_is_a_hard_bound() {
        let g = MemoryReplayGuard::new(Duration::from_secs(3600), 32);
        let t0 = from_millis(1_000_000);
        for i in 0..10_000 {
            assert_eq!(g.claim("s", &i.to_string(), t0), Claim::New);
        }
        let held: usize = g.shards.iter().map(|s| s.lock().unwrap().live.len()).sum();
        assert!(held <= 32, "held {held}");
        assert!(g.evicted_early() >= 10_000 - 32);
    }
}
