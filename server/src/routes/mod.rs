//! HTTP routes, one module per resource.

pub mod schemas;
pub mod system;
pub mod uploads;
pub mod ws;
