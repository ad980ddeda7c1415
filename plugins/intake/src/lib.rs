//! cloudify's intake plugin: an intake catalog of every dataset (`/intake.yaml`) and one per
//! dataset (`/datasets/{id}/catalog.yaml`), in the shapes xpublish-intake and cloudify serve.
//!
//! Config (`[plugin.intake]`): `public_url`, the URL clients reach this server at (default:
//! taken from the request's `Host` and `X-Forwarded-*` headers); `default_method`, `zarr`
//! (default) or `kerchunk`.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod catalog;

use std::sync::Arc;

use cloudify_sdk::{Host, Plugin, Route, Scope};

use crate::catalog::Config;

cloudify_sdk::declare_plugin!(name: "intake", init: init);

fn init(host: Host) -> Result<Plugin, String> {
    let config = Arc::new(Config::load(&host)?);
    let for_dataset = Arc::clone(&config);
    Ok(Plugin::new("intake", env!("CARGO_PKG_VERSION"))
        .description("intake catalogs of the served datasets")
        .route(
            Route::get(Scope::App, "/intake.yaml", move |host, req| {
                let answer = catalog::root(&config, &host, &req);
                async move { answer }
            })
            .summary("intake catalog of every dataset")
            .content_type("text/yaml"),
        )
        .route(
            Route::get(Scope::Dataset, "/catalog.yaml", move |host, req| {
                let answer = catalog::dataset(&for_dataset, &host, &req);
                async move { answer }
            })
            .summary("intake catalog of one dataset")
            .content_type("text/yaml"),
        ))
}
