//! Sets behind the `unique`, `primaryKey` and `uniqueKeys` checks.
//!
//! Values are not stored: each set keeps a 128-bit XXH3 hash of the value's canonical bytes,
//! 16 bytes however long the value. The trade-off is that two different values whose hashes
//! collide would be reported as a duplicate. With 128-bit hashes the chance of any collision
//! among n values is about n² / 2¹²⁹: for a billion values, about 1 in 10²¹ — far below the
//! odds of a disk error — so it is accepted in exchange for fixed-size entries.
//!
//! The sets together stay under a memory cap; when the next growth would pass it, the caller
//! gets [`CapReached`] and reports that uniqueness was not checked from there on.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use xxhash_rust::xxh3::xxh3_128;

/// Bytes a set slot costs: a 16-byte hash, hashbrown's control byte, and its 7/8 load factor.
const BYTES_PER_SLOT: usize = 20;

/// The memory cap would be passed by the next insertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapReached;

pub struct UniqueSets {
    sets: Vec<HashSet<u128, BuildHasherDefault<PassThroughHasher>>>,
    memory_cap: usize,
}

impl UniqueSets {
    pub fn new(count: usize, memory_cap: usize) -> UniqueSets {
        UniqueSets { sets: (0..count).map(|_| HashSet::default()).collect(), memory_cap }
    }

    /// Add the value with these canonical bytes to set `index`; `Ok(false)` means it was
    /// already there (a duplicate).
    pub fn insert(&mut self, index: usize, canonical: &[u8]) -> Result<bool, CapReached> {
        let set = &self.sets[index];
        if set.len() == set.capacity() {
            let grown = (set.capacity() * 2).max(4);
            let projected = self.memory_bytes() - set.capacity() * BYTES_PER_SLOT + grown * BYTES_PER_SLOT;
            if projected > self.memory_cap {
                return Err(CapReached);
            }
        }
        Ok(self.sets[index].insert(xxh3_128(canonical)))
    }

    /// Estimated bytes held by all sets.
    pub fn memory_bytes(&self) -> usize {
        self.sets.iter().map(|s| s.capacity() * BYTES_PER_SLOT).sum()
    }
}

/// The keys are already uniform hashes: use their low bits as they are.
#[derive(Default)]
pub struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }

    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_duplicates_per_set() {
        let mut sets = UniqueSets::new(2, 1 << 20);
        assert_eq!(sets.insert(0, b"a"), Ok(true));
        assert_eq!(sets.insert(1, b"a"), Ok(true));
        assert_eq!(sets.insert(0, b"a"), Ok(false));
    }

    #[test]
    fn stops_at_the_memory_cap() {
        let mut sets = UniqueSets::new(1, 4096);
        let inserted = (0u32..10_000).take_while(|i| sets.insert(0, &i.to_le_bytes()).is_ok()).count();
        assert!(inserted > 50 && inserted < 10_000, "{inserted}");
        assert!(sets.memory_bytes() <= 4096);
    }
}
