//! Locks that outlive a panic.

use std::sync::{Mutex, MutexGuard};

/// Take the lock even if a thread panicked while holding it. Every lock in the server guards
/// data that a panic cannot leave half-written (each critical section either completes its
/// update or changes nothing), so the data behind a poisoned lock is still sound.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
