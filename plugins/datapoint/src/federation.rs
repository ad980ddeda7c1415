//! The peers searched, and the products of their items opened as sources; searched again on
//! a schedule.

use std::{
    collections::HashMap,
    sync::{atomic::AtomicBool, Arc, PoisonError, RwLock},
    time::Duration,
};

use cloudify_datapoint::{Client, CloudFormat, ProductOptions, Search};
use cloudify_dataset::{Limits, SharedSource};
use cloudify_open::Opener;
use cloudify_sdk::{Host, HostExt, LogLevel};
use cloudify_store::{Confinement, Stores};
use tokio::runtime::Handle;

use crate::config::SourceConfig;

/// A product as opened: its href (kept while the search finds it at the same place).
#[derive(Clone)]
struct Served {
    href: String,
    source: SharedSource,
}

/// One peer and its datasets, by id.
struct Peer {
    config: SourceConfig,
    formats: Vec<CloudFormat>,
    datasets: RwLock<HashMap<String, Served>>,
    /// Ids in the order the search found them.
    order: RwLock<Vec<String>>,
    /// Whether the last search failed (one warning per failure streak).
    failing: AtomicBool,
}

/// Every configured peer.
pub(crate) struct Federation {
    peers: Vec<Arc<Peer>>,
    host: Host,
    runtime: Handle,
    opener: Arc<Opener>,
}

impl Federation {
    /// The peers of `configs`, not yet searched.
    ///
    /// # Errors
    /// A format that is not `kerchunk`, `CFA` or `zarr`.
    pub(crate) fn new(configs: Vec<SourceConfig>, host: Host, runtime: Handle) -> Result<Self, String> {
        let mut peers = Vec::new();
        for config in configs {
            let formats = config
                .formats
                .iter()
                .map(|label| match CloudFormat::from_label(label) {
                    Some(CloudFormat::Cog) | None => Err(format!(
                        "[[plugin.datapoint.sources]] {}: format '{label}' is not one of kerchunk, CFA, zarr",
                        config.url
                    )),
                    Some(format) => Ok(format),
                })
                .collect::<Result<Vec<_>, _>>()?;
            peers.push(Arc::new(Peer {
                config,
                formats,
                datasets: RwLock::default(),
                order: RwLock::default(),
                failing: false.into(),
            }));
        }
        // Products are remote: the scan cache holds only what local files would need.
        let cache = std::env::temp_dir().join("cloudify-datapoint-scans");
        let opener = Arc::new(Opener::new(cache, Arc::new(Stores::new()), Limits::default()));
        Ok(Self { peers, host, runtime, opener })
    }

    pub(crate) fn runtime(&self) -> &Handle {
        &self.runtime
    }

    /// Searches every peer once, warning once for a peer that starts failing.
    pub(crate) async fn refresh_all(&self) {
        for peer in &self.peers {
            let (peer_for_search, opener, host) = (Arc::clone(peer), Arc::clone(&self.opener), self.host.clone());
            let outcome = self
                .runtime
                .spawn_blocking(move || search(&peer_for_search, &opener, &host))
                .await
                .unwrap_or_else(|panicked| Err(panicked.to_string()));
            let was_failing = peer.failing.swap(outcome.is_err(), std::sync::atomic::Ordering::Relaxed);
            match outcome {
                Err(reason) if !was_failing => self.host.log(
                    LogLevel::Warn,
                    &format!(
                        "datapoint source {} not searched (retried every {} s): {reason}",
                        peer.config.url, peer.config.refresh_secs
                    ),
                ),
                Ok(()) if was_failing => {
                    self.host.log(LogLevel::Info, &format!("datapoint source {} answers again", peer.config.url))
                }
                _ => {}
            }
        }
    }

    /// Searches again every `refresh_secs` (the shortest of the peers').
    pub(crate) async fn refresh_forever(self: Arc<Self>) {
        let every = self.peers.iter().map(|p| p.config.refresh_secs).min().unwrap_or(3600).max(1);
        loop {
            tokio::time::sleep(Duration::from_secs(every)).await;
            self.refresh_all().await;
        }
    }

    /// Every dataset id, peer by peer in search order; an id a peer before already serves
    /// is left to it.
    pub(crate) fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for peer in &self.peers {
            for id in peer.order.read().unwrap_or_else(PoisonError::into_inner).iter() {
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
        }
        ids
    }

    /// The source of dataset `id`.
    pub(crate) fn get(&self, id: &str) -> Option<SharedSource> {
        self.peers.iter().find_map(|peer| {
            peer.datasets
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(id)
                .map(|served| Arc::clone(&served.source))
        })
    }
}

/// Searches `peer` and opens the products that are new or moved; what the search no longer
/// finds is dropped. Blocking (HTTP, scans): run on a blocking thread of the runtime.
fn search(peer: &Peer, opener: &Opener, host: &Host) -> Result<(), String> {
    let config = &peer.config;
    let client = Client::open(&config.url).map_err(|e| e.to_string())?;
    let mut search = Search::new()
        .collections(config.collections.clone())
        .query(config.query.clone())
        .ids(config.ids.clone())
        .max_items(config.max_items);
    if let Some(bbox) = config.bbox {
        search = search.bbox(bbox);
    }
    if let Some(datetime) = &config.datetime {
        search = search.datetime(datetime.clone());
    }
    let confinement = Confinement::of_set(&config.url, &config.allow_targets)?;
    let options = ProductOptions { priority: peer.formats.clone(), ..Default::default() };
    let before = peer.datasets.read().unwrap_or_else(PoisonError::into_inner).clone();
    let mut found = HashMap::new();
    let mut order = Vec::new();
    for item in client.search(&search).map_err(|e| e.to_string())? {
        let item = item.map_err(|e| e.to_string())?;
        let id = format!("{}{}", config.prefix, item.id);
        let Ok(product) = item.products(&options).get(None).cloned() else { continue };
        let served = match before.get(&id) {
            Some(served) if served.href == product.href => served.clone(),
            _ => {
                let opened = confinement
                    .check(&product.href)
                    .map_err(|reason| format!("product {}: {reason}", product.href))
                    .and_then(|_| product.open(opener, &config.allow_targets).map_err(|e| e.to_string()));
                match opened {
                    Ok(source) => Served { href: product.href.clone(), source },
                    Err(reason) => {
                        host.log(LogLevel::Warn, &format!("datapoint dataset '{id}' not served: {reason}"));
                        continue;
                    }
                }
            }
        };
        if found.insert(id.clone(), served).is_none() {
            order.push(id);
        }
    }
    *peer.datasets.write().unwrap_or_else(PoisonError::into_inner) = found;
    *peer.order.write().unwrap_or_else(PoisonError::into_inner) = order;
    Ok(())
}
