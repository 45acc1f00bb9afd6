//! HTTP routes, one module per resource, and [`auth`]: who the request is from.

pub mod auth;
pub mod schemas;
pub mod system;
pub mod uploads;
pub mod ws;
