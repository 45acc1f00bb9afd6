//! Sets behind the `unique`, `primaryKey` and `uniqueKeys` checks.
//!
//! Values are not stored: each set keeps a 128-bit XXH3 hash of the value's canonical bytes,
//! 16 bytes however long the value. The trade-off is that two different values whose hashes
//! collide would be reported as a duplicate. With 128-bit hashes the chance of any collision
//! among n values is about n² / 2¹²⁹: for a billion values, about 1 in 10²¹ — far below the
//! odds of a disk error — so it is accepted in exchange for fixed-size entries.
//!
//! Integer keys (the usual `id` column) go into a roaring bitmap instead: exact, a bit or two
//! per value when ids are dense, and cache-friendly, where random hash-table inserts were the
//! single largest cost of validating a file with a primary key.
//!
//! The sets together stay under a memory cap; when the next growth would pass it, the caller
//! gets [`CapReached`] and reports that uniqueness was not checked from there on.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use roaring::RoaringTreemap;
use xxhash_rust::xxh3::xxh3_128;

/// How often (in integer inserts) the bitmaps' memory is measured again.
const BITMAP_MEASURE_EVERY: u32 = 4096;

/// A value to check for uniqueness.
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    Integer(i128),
    /// Canonical bytes of any other value (or of a composite key).
    Bytes(&'a [u8]),
}

/// Bytes a set slot costs: a 16-byte hash, hashbrown's control byte, and its 7/8 load factor.
const BYTES_PER_SLOT: usize = 20;

/// The memory cap would be passed by the next insertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapReached;

#[derive(Default)]
struct KeySet {
    hashes: HashSet<u128, BuildHasherDefault<PassThroughHasher>>,
    integers: Integers,
    integer_inserts: u32,
    /// The bitmap's size when last measured.
    integer_bytes: usize,
}

pub struct UniqueSets {
    sets: Vec<KeySet>,
    memory_cap: usize,
}

impl UniqueSets {
    pub fn new(count: usize, memory_cap: usize) -> UniqueSets {
        UniqueSets {
            sets: (0..count).map(|_| KeySet::default()).collect(),
            memory_cap,
        }
    }

    /// Add a value to set `index`; `Ok(false)` means it was already there (a duplicate).
    pub fn insert(&mut self, index: usize, key: Key<'_>) -> Result<bool, CapReached> {
        match key {
            Key::Integer(value) => match i64::try_from(value) {
                Ok(value) => self.insert_integer(index, value),
                Err(_) => self.insert_hash(index, &value.to_le_bytes()),
            },
            Key::Bytes(bytes) => self.insert_hash(index, bytes),
        }
    }

    fn insert_integer(&mut self, index: usize, value: i64) -> Result<bool, CapReached> {
        let set = &mut self.sets[index];
        set.integer_inserts += 1;
        if set.integer_inserts.is_multiple_of(BITMAP_MEASURE_EVERY) {
            set.integer_bytes = set.integers.bitmap.serialized_size();
            if self.memory_bytes() > self.memory_cap {
                return Err(CapReached);
            }
        }
        // Flip the sign bit so the order (and density) of ids carries over to u64.
        Ok(self.sets[index].integers.insert((value as u64) ^ (1 << 63)))
    }

    fn insert_hash(&mut self, index: usize, canonical: &[u8]) -> Result<bool, CapReached> {
        let hashes = &self.sets[index].hashes;
        if hashes.len() == hashes.capacity() {
            let grown = (hashes.capacity() * 2).max(4);
            let projected =
                self.memory_bytes() - hashes.capacity() * BYTES_PER_SLOT + grown * BYTES_PER_SLOT;
            if projected > self.memory_cap {
                return Err(CapReached);
            }
        }
        Ok(self.sets[index].hashes.insert(xxh3_128(canonical)))
    }

    /// Estimated bytes held by all sets.
    pub fn memory_bytes(&self) -> usize {
        self.sets
            .iter()
            .map(|s| s.hashes.capacity() * BYTES_PER_SLOT + s.integer_bytes)
            .sum()
    }
}

/// Integer keys: a roaring bitmap, and aside from it the run of consecutive values above
/// everything in it. Ids usually count up one by one: extending the run is two comparisons,
/// where a bitmap insert walks a tree and a container.
#[derive(Default)]
struct Integers {
    bitmap: RoaringTreemap,
    /// The largest value in `bitmap`.
    bitmap_max: Option<u64>,
    /// `start..=end`, none of them in `bitmap`, all above `bitmap_max`.
    run: Option<(u64, u64)>,
}

impl Integers {
    /// `false`: already there.
    #[inline]
    fn insert(&mut self, value: u64) -> bool {
        let above_bitmap = self.bitmap_max.is_none_or(|max| value > max);
        if let Some((start, end)) = self.run {
            if (start..=end).contains(&value) {
                return false;
            }
            if end.checked_add(1) == Some(value) {
                self.run = Some((start, value));
                return true;
            }
        }
        if !above_bitmap {
            return self.bitmap.insert(value);
        }
        // Above the bitmap and not in the run: new. It starts the next run unless it is below
        // the current one, which then goes into the bitmap first.
        match self.run {
            Some((_, end)) if value < end => {
                self.flush_run();
                self.bitmap.insert(value)
            }
            _ => {
                self.flush_run();
                self.run = Some((value, value));
                true
            }
        }
    }

    fn flush_run(&mut self) {
        if let Some((start, end)) = self.run.take() {
            self.bitmap.insert_range(start..=end);
            self.bitmap_max = Some(end); // the run was above everything in the bitmap
        }
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
        assert_eq!(sets.insert(0, Key::Bytes(b"a")), Ok(true));
        assert_eq!(sets.insert(1, Key::Bytes(b"a")), Ok(true));
        assert_eq!(sets.insert(0, Key::Bytes(b"a")), Ok(false));
        for value in [-1, 0, i64::MIN as i128, i64::MAX as i128, i128::MAX] {
            assert_eq!(sets.insert(0, Key::Integer(value)), Ok(true), "{value}");
            assert_eq!(sets.insert(0, Key::Integer(value)), Ok(false), "{value}");
        }
    }

    // proptest is not a dev-dependency on wasm32.
    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        /// The run kept aside changes nothing: the same answers as a plain set, for ids that
        /// count up, jump, repeat and go back.
        #[test]
        fn integer_sets_answer_as_a_plain_set_does(
            steps in proptest::collection::vec((0u64..40, 1usize..6), 0..60)
        ) {
            let mut integers = Integers::default();
            let mut plain = HashSet::new();
            for (start, count) in steps {
                for value in start..start + count as u64 {
                    proptest::prop_assert_eq!(integers.insert(value), plain.insert(value), "{}", value);
                }
            }
            proptest::prop_assert_eq!(integers.insert(u64::MAX), plain.insert(u64::MAX));
            proptest::prop_assert_eq!(integers.insert(u64::MAX), plain.insert(u64::MAX));
        }
    }

    #[test]
    fn stops_at_the_memory_cap() {
        let mut sets = UniqueSets::new(1, 4096);
        let inserted = (0u32..10_000)
            .take_while(|i| sets.insert(0, Key::Bytes(&i.to_le_bytes())).is_ok())
            .count();
        assert!(inserted > 50 && inserted < 10_000, "{inserted}");
        assert!(sets.memory_bytes() <= 4096);
        // Sparse integers cost bitmap containers; the cap holds for them too.
        let mut sets = UniqueSets::new(1, 64 * 1024);
        let inserted = (0i128..1_000_000)
            .take_while(|i| sets.insert(0, Key::Integer(i * 1_000_003)).is_ok())
            .count();
        assert!(inserted < 1_000_000, "{inserted}");
    }
}
