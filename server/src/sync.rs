//! Locks that outlive a panic.

use std::sync::{Mutex, MutexGuard};

/// Lock `m`, recovering it if a thread panicked while holding it. Recovering is safe here
/// because every value behind these locks stays whole between statements (counters, maps
/// and job views are changed by single assignments or inserts), and a validation that panics
/// is caught and its job failed: refusing the lock forever would stop every later upload,
/// push or cancel instead of only the one that panicked.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
