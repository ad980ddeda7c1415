//! The cloudify host: configuration, plugin loading, the dataset registry and the HTTP router.
//! It is glue; data-plane work lives in `crates/`, endpoints beyond the built-in ones in plugins.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod app;
pub mod auth;
pub mod budget;
pub mod config;
pub mod datasets;
pub mod error;
mod host_api;
pub mod links;
pub mod loader;
pub mod metrics;
pub mod observe;
mod openapi;
pub mod registry;
pub mod reload;
mod routes;
pub mod serve;
pub mod usage;

pub use app::{app, AppState};
