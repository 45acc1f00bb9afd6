//! End-to-end tests live in `dashboard.rs`; `cargo xtask test` builds the release dashboard
//! and the server first, then runs them (they are `#[ignore]`d for a bare `cargo test`).
