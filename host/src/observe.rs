//! The middleware that sees every answer whole: once its body has been sent (or dropped), it
//! is counted in the usage counters and the metrics, and written to the access log.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use axum::{
    body::Body,
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::{error::REQUEST_ID, metrics::Metrics, usage::Usage};

/// What is told of each answer.
#[derive(Default)]
pub struct Observers {
    /// Usage counters, when kept.
    pub usage: Option<Arc<Usage>>,
    /// Prometheus metrics, when installed.
    pub metrics: Option<Arc<Metrics>>,
    /// Whether each answer is logged (target `cloudify::access`).
    pub access_log: bool,
    /// The plugin of each route template (`cloudify` for the built-in ones).
    pub plugins: HashMap<String, String>,
}

/// One answer, told when its body is dropped.
struct Answer {
    observers: Arc<Observers>,
    started: Instant,
    method: String,
    path: String,
    route: String,
    status: u16,
    request_id: String,
}

/// Middleware: wraps each answer's body to be told of it once sent.
pub(crate) async fn observe(State(observers): State<Arc<Observers>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "(none)".to_owned(), |m| m.as_str().to_owned());
    // Set on the request by the request-id layer outside this one.
    let request_id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    if observers.metrics.is_some() {
        let plugin = observers.plugins.get(&route).cloned().unwrap_or_else(|| "none".to_owned());
        metrics::counter!("cloudify_http_requests_total", "route" => route.clone(), "plugin" => plugin.clone(), "status" => status.to_string())
            .increment(1);
        metrics::histogram!("cloudify_http_request_duration_seconds", "route" => route.clone(), "plugin" => plugin)
            .record(started.elapsed().as_secs_f64());
    }
    let answer = Answer { observers, started, method, path, route, status, request_id };
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Body::new(Counted { inner: body, sent: 0, answer: Some(answer) }))
}

impl Answer {
    fn told(self, bytes: u64) {
        let (dataset, endpoint) = crate::usage::labels(&self.path, self.status);
        if let Some(metrics) = &self.observers.metrics {
            let plugin = self.observers.plugins.get(&self.route).cloned().unwrap_or_else(|| "none".to_owned());
            metrics::counter!("cloudify_http_response_bytes_total", "route" => self.route.clone(), "plugin" => plugin)
                .increment(bytes);
            if self.status < 400 && self.path.starts_with("/datasets/") && !dataset.starts_with('(') {
                let label = metrics.dataset_label(&dataset);
                metrics::counter!("cloudify_dataset_requests_total", "dataset" => label.clone()).increment(1);
                metrics::counter!("cloudify_dataset_response_bytes_total", "dataset" => label).increment(bytes);
            }
        }
        if self.observers.access_log {
            tracing::info!(
                target: "cloudify::access",
                request_id = self.request_id,
                method = self.method,
                path = self.path,
                route = self.route,
                dataset = if dataset.starts_with('(') { "" } else { dataset.as_str() },
                status = self.status,
                bytes,
                duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
                "answered"
            );
        }
        if let Some(usage) = &self.observers.usage {
            usage.record(dataset, endpoint, bytes);
        }
    }
}

/// A body that tells of its answer, with the bytes it sent, when dropped.
struct Counted {
    inner: Body,
    sent: u64,
    answer: Option<Answer>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.sent += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(answer) = self.answer.take() {
            answer.told(self.sent);
        }
    }
}
