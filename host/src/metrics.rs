//! `/metrics`: Prometheus text exposition through the `metrics` facade and
//! `metrics-exporter-prometheus`.
//!
//! Requests by route template, plugin and status; latency until the answer starts; bytes
//! sent; per dataset requests and bytes (the first [`MAX_DATASET_LABELS`] datasets asked for
//! by their id, the rest as `other`); chunk reads by source kind (`crates/dataset`), the
//! decoded-chunk and reference caches' hits and misses; and, read when scraped, datasets and
//! plugins loaded, open files, and the read budget's free bytes.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use cloudify_store::Stores;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::registry::Registry;

/// Datasets with labels of their own; later ones share `other` (bounded cardinality).
pub const MAX_DATASET_LABELS: usize = 100;

/// Latency buckets in seconds: chunk answers take milliseconds, pictures and derived
/// datasets seconds.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process's metrics.
pub struct Metrics {
    handle: PrometheusHandle,
    /// Datasets given a label of their own.
    labelled: Mutex<HashSet<String>>,
    registry: Arc<Registry>,
    stores: Option<Arc<Stores>>,
}

impl Metrics {
    /// Installs the process's recorder (once: a second call fails) for `registry`, whose
    /// local reads go through `stores`.
    ///
    /// # Errors
    /// When a recorder is installed already.
    pub fn install(registry: Arc<Registry>, stores: Option<Arc<Stores>>) -> Result<Self, String> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("seconds".to_owned()), &LATENCY_BUCKETS)
            .map_err(|e| e.to_string())?
            .build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
        describe();
        Ok(Self { handle, labelled: Mutex::new(HashSet::new()), registry, stores })
    }

    /// Drains histogram samples every few seconds, as the exporter needs when not installed
    /// with its own listener.
    pub async fn upkeep(self: Arc<Self>) {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            self.handle.run_upkeep();
        }
    }

    /// The dataset label of `id`.
    pub(crate) fn dataset_label(&self, id: &str) -> String {
        let mut labelled = self.labelled.lock().unwrap_or_else(PoisonError::into_inner);
        if labelled.contains(id) || (labelled.len() < MAX_DATASET_LABELS && labelled.insert(id.to_owned())) {
            id.to_owned()
        } else {
            "other".to_owned()
        }
    }

    /// The exposition, with the gauges read now.
    pub fn render(&self) -> String {
        metrics::gauge!("cloudify_datasets").set(self.registry.ids().len() as f64);
        metrics::gauge!("cloudify_plugins").set(self.registry.plugins().len() as f64);
        metrics::gauge!("cloudify_read_budget_free_bytes").set(self.registry.read_budget().available_bytes() as f64);
        if let Some(stores) = &self.stores {
            metrics::gauge!("cloudify_open_files").set(stores.open_files() as f64);
        }
        self.handle.render()
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("cloudify_http_requests_total", "Answers by route template, plugin and status");
    describe_histogram!(
        "cloudify_http_request_duration_seconds",
        Unit::Seconds,
        "Time until the answer starts, by route template and plugin"
    );
    describe_counter!(
        "cloudify_http_response_bytes_total",
        Unit::Bytes,
        "Body bytes sent, by route template and plugin"
    );
    describe_counter!("cloudify_dataset_requests_total", "Answers below 400 per dataset (the first 100, then other)");
    describe_counter!("cloudify_dataset_response_bytes_total", Unit::Bytes, "Body bytes sent per dataset");
    describe_counter!("cloudify_chunk_reads_total", "Stored chunks read, by source: file, remote, inline, fill");
    describe_counter!("cloudify_decoded_cache_requests_total", "Decoded-chunk cache lookups: hit or miss");
    describe_counter!("cloudify_reference_cache_requests_total", "Scans asked of the reference cache: hit or miss");
    describe_gauge!("cloudify_datasets", "Datasets served");
    describe_gauge!("cloudify_plugins", "Plugins loaded");
    describe_gauge!("cloudify_open_files", "Local files held open for reads");
    describe_gauge!("cloudify_read_budget_free_bytes", Unit::Bytes, "Bytes reads may still take");
}
