//! cloudify's web plugin: pages for people, served by the server itself (no CDN, no other
//! service; every asset is compiled in).
//!
//! * `/`: the catalogue. Without JavaScript, every dataset, a page at a time; with it, a
//!   search box, a time range, a box drawn on a world map and facets, answered by the STAC
//!   API's item search (`/stac/search`), so the page finds what pystac-client finds.
//! * `/datasets/{id}/`: the dataset's page (it replaces the host's bare summary): dimensions,
//!   coordinates with their ranges (times as dates of the data's calendar), variables with
//!   units, chunking and size, a preview per variable from the plot plugin, the attributes,
//!   and the code that opens it with each client the loaded plugins serve, with copy buttons.
//! * `/docs`: the OpenAPI document rendered by Swagger UI (vendored, `assets/README.md`).
//! * `/stats`: requests and bytes per dataset, endpoint and day (the host's `/usage`).
//! * `/web/{file}`: the assets (`Cache-Control`, `ETag`, gzip for the large ones).
//!
//! Config (`[plugin.web]`): `public_url` (the URL in links and snippets; default the host's
//! base URL, itself `server.public_url` when set), `title`, `page_size`, `facets` (STAC item
//! properties offered as filters: global attributes the STAC profile copies), `previews`.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod assets;
mod catalogue;
mod dataset;
mod page;
mod snippets;

use std::sync::Arc;

use cloudify_sdk::{Host, HostExt, Plugin, Request, Route, Scope};
use serde::Deserialize;

cloudify_sdk::declare_plugin!(name: "web", init: init);

/// `[plugin.web]`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    /// URL clients reach the server at, for links and snippets; default the host's.
    public_url: Option<String>,
    /// The site's name, in every page's title and header.
    pub title: String,
    /// Datasets per catalogue page.
    pub page_size: usize,
    /// STAC item properties offered as filters, where some dataset has them.
    pub facets: Vec<String>,
    /// Whether dataset pages show a picture per variable (when the plot plugin is loaded).
    pub previews: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            public_url: None,
            title: "cloudify".to_owned(),
            page_size: 25,
            facets: ["project", "activity_id", "source_id", "experiment_id", "frequency", "table_id", "variable_id"]
                .map(str::to_owned)
                .to_vec(),
            previews: true,
        }
    }
}

/// Largest catalogue page.
const MAX_PAGE_SIZE: usize = 1000;

impl Config {
    fn load(host: &Host) -> Result<Self, String> {
        let config: Self = host.config().map_err(|err| err.to_string())?;
        if !(1..=MAX_PAGE_SIZE).contains(&config.page_size) {
            return Err(format!("page_size must be 1 to {MAX_PAGE_SIZE}"));
        }
        Ok(config)
    }

    /// The base URL of links, without a trailing slash.
    pub(crate) fn base_url(&self, req: &Request) -> String {
        let base = self.public_url.clone().unwrap_or_else(|| req.base_url());
        base.trim_end_matches('/').to_owned()
    }
}

/// What a page may link to: the plugins loaded now (read per request: plugins load in any
/// order, after this one's `init`).
pub(crate) struct Loaded(Vec<String>);

impl Loaded {
    pub(crate) fn of(host: &Host) -> Self {
        Self(host.plugins())
    }

    pub(crate) fn has(&self, plugin: &str) -> bool {
        self.0.iter().any(|name| name == plugin)
    }
}

fn init(host: Host) -> Result<Plugin, String> {
    let config = Arc::new(Config::load(&host)?);
    let catalogue = Arc::new(catalogue::Catalogue::new(Arc::clone(&config)));
    let (for_dataset, for_docs, for_stats) = (Arc::clone(&config), Arc::clone(&config), Arc::clone(&config));
    Ok(Plugin::new("web", env!("CARGO_PKG_VERSION"))
        .description("pages for people: the catalogue, dataset pages, the API documentation")
        .route(
            Route::get(Scope::App, "/", move |host, req| {
                let answer = catalogue.page(&host, &req);
                async move { answer }
            })
            .summary("The catalogue: every dataset, with search, time, area and facet filters (HTML)")
            .content_type("text/html"),
        )
        .route(
            Route::get(Scope::Dataset, "/", move |host, req| {
                let config = Arc::clone(&for_dataset);
                async move { dataset::page(&config, &host, &req).await }
            })
            .summary("The dataset's page: structure, previews and code that opens it (HTML)")
            .content_type("text/html"),
        )
        .route(
            Route::get(Scope::App, "/docs", move |_host, req| {
                let answer = page::docs(&for_docs, &req);
                async move { answer }
            })
            .summary("This API's OpenAPI document rendered by Swagger UI (HTML)")
            .content_type("text/html"),
        )
        .route(
            Route::get(Scope::App, "/stats", move |_host, req| {
                let answer = page::stats(&for_stats, &req);
                async move { answer }
            })
            .summary("Requests and bytes per dataset, endpoint and day, from the host's /usage (HTML)")
            .content_type("text/html"),
        )
        .route(
            Route::get(Scope::App, "/web/{file}", |_host, req| {
                let answer = assets::answer(&req);
                async move { answer }
            })
            .summary("Style sheets, scripts and pictures of the pages")
            .content_type("application/octet-stream"),
        ))
}
