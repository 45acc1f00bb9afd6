//! Numbers as people read them; sizes and counts come from the shared crate, so the dashboard
//! and the command line say them the same way.

pub use datavista_shared::format::{group, human_size, plural};

/// The part done, 0 to 1, for a progress bar (0 while the total is unknown).
pub fn fraction(done: f64, total: f64) -> f64 {
    if total > 0.0 {
        done / total
    } else {
        0.0
    }
}
