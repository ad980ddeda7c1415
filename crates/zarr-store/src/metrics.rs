//! A plugin's own metrics: its cache's hits and misses, in Prometheus text at
//! `/metrics/{plugin}`, which the host appends to its `/metrics`. The counters live in a
//! recorder of the plugin's own, not in the `metrics` facade's global one: a plugin library
//! has its own copy of the facade, with no recorder, and a plugin linked into the host
//! (`static-all`) must not take the host's.

use std::sync::Arc;

use cloudify_sdk::{Response, Route, Scope};
use metrics::Counter;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

/// Lookups of one cache, `hit` or `miss`.
pub struct CacheMetrics {
    recorder: PrometheusRecorder,
    hit: Counter,
    miss: Counter,
}

impl CacheMetrics {
    /// The counter `name` (labels `result="hit"|"miss"`), described by `help`.
    pub fn new(name: &'static str, help: &'static str) -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let (hit, miss) = metrics::with_local_recorder(&recorder, || {
            metrics::describe_counter!(name, help);
            (metrics::counter!(name, "result" => "hit"), metrics::counter!(name, "result" => "miss"))
        });
        Self { recorder, hit, miss }
    }

    /// Counts a lookup answered from the cache (`true`) or not.
    pub fn looked_up(&self, hit: bool) {
        if hit {
            self.hit.increment(1);
        } else {
            self.miss.increment(1);
        }
    }

    /// The exposition.
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }

    /// `GET /metrics/{plugin}`: the exposition, which the host appends to its `/metrics`.
    pub fn route(self: Arc<Self>, plugin: &str) -> Route {
        Route::get(Scope::App, &format!("/metrics/{plugin}"), move |_, _| {
            let text = self.render();
            async move { Response::bytes(200, "text/plain; version=0.0.4; charset=utf-8", text.into_bytes()) }
        })
        .summary("This plugin's cache metrics (Prometheus text; also in /metrics)")
        .content_type("text/plain")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_counted_in_the_plugins_own_exposition() {
        let metrics = CacheMetrics::new("cloudify_test_cache_requests_total", "Lookups");
        metrics.looked_up(true);
        metrics.looked_up(false);
        metrics.looked_up(false);
        let text = metrics.render();
        assert!(text.contains("# HELP cloudify_test_cache_requests_total Lookups"), "{text}");
        assert!(text.contains("cloudify_test_cache_requests_total{result=\"hit\"} 1"), "{text}");
        assert!(text.contains("cloudify_test_cache_requests_total{result=\"miss\"} 2"), "{text}");
        // Not the process's global recorder (none is installed in this test).
        assert!(!CacheMetrics::new("cloudify_other_total", "x").render().contains("cloudify_test"));
    }
}
