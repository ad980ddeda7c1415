//! Conveniences on [`Request`] and [`Response`], so handlers rarely touch `RString`/`RVec`.

use std::{panic::AssertUnwindSafe, pin::Pin, sync::Arc};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RString, RVec, Tuple2},
};
use async_ffi::{FfiFuture, FutureExt as _};
use futures::{FutureExt as _, Stream, StreamExt as _};
use serde::Serialize;

use crate::abi::{Body, BodyStream, BodyStream_TO, Request, Response};

/// The request header in which the host hands a plugin the URL clients reach the server at,
/// decided from its configuration (`server.public_url`, allowed hosts, trusted proxies), never
/// from headers a client may forge.
pub const BASE_URL_HEADER: &str = "x-cloudify-base-url";

/// Largest piece a shared body is sent in.
const PIECE: usize = 1 << 20;

impl Request {
    /// The matched path parameter `name` (`"id"` is the dataset id in dataset routes).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|kv| kv.0 == name).map(|kv| kv.1.as_str())
    }

    /// The first header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|kv| kv.0.eq_ignore_ascii_case(name)).map(|kv| kv.1.as_str())
    }

    /// The dataset id of a dataset-scoped route.
    pub fn dataset_id(&self) -> Option<&str> {
        self.param("id")
    }

    /// `true` for `HEAD` requests: the body will be dropped, so work can be skipped.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// The URL this server is reached at (`http://host:port`, no trailing slash), for links
    /// in catalogs: what the host decided ([`BASE_URL_HEADER`]); outside a host (tests),
    /// from `Host` and `X-Forwarded-Proto`/`X-Forwarded-Host`.
    pub fn base_url(&self) -> String {
        if let Some(base) = self.header(BASE_URL_HEADER) {
            return base.to_owned();
        }
        let proto = self.header("x-forwarded-proto").unwrap_or("http");
        let host = self.header("x-forwarded-host").or_else(|| self.header("host")).unwrap_or("localhost");
        format!("{proto}://{host}")
    }
}

impl Response {
    /// A response with `status`, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Self { status, headers: RVec::new(), body: Body::Bytes(RVec::new()) }
    }

    /// A response with a byte body and its media type.
    pub fn bytes(status: u16, content_type: &str, body: impl Into<RVec<u8>>) -> Self {
        Self::new(status).with_header("content-type", content_type).with_body(body)
    }

    /// A response whose body is shared (e.g. with a cache): bodies over 1 MiB are sent in
    /// pieces of 1 MiB, so a response holds one piece at a time instead of a whole copy.
    pub fn shared<B>(status: u16, content_type: &str, body: Arc<B>) -> Self
    where
        B: AsRef<[u8]> + Send + Sync + 'static,
    {
        let len = (*body).as_ref().len();
        if len <= PIECE {
            return Self::bytes(status, content_type, RVec::from((*body).as_ref()));
        }
        let mut response =
            Self::new(status).with_header("content-type", content_type).with_header("content-length", &len.to_string());
        response.body = Body::Stream(BodyStream_TO::from_value(Pieces { body, at: 0 }, TD_Opaque));
        response
    }

    /// A response whose body is `pieces`, sent as they come (a file read range by range).
    /// The stream runs on the host's side of the boundary only through a guard: a panic while
    /// producing a piece ends the body there (the client sees it cut short, as after a read
    /// error), never the server.
    pub fn stream<S>(status: u16, content_type: &str, pieces: S) -> Self
    where
        S: Stream<Item = RVec<u8>> + Send + 'static,
    {
        Self::new(status).with_header("content-type", content_type).with_stream(pieces)
    }

    /// Replaces the body with `pieces`, as [`Response::stream`] sends them.
    pub fn with_stream<S>(mut self, pieces: S) -> Self
    where
        S: Stream<Item = RVec<u8>> + Send + 'static,
    {
        let guarded = Guarded { pieces: Arc::new(futures::lock::Mutex::new(Box::pin(pieces))) };
        self.body = Body::Stream(BodyStream_TO::from_value(guarded, TD_Opaque));
        self
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::bytes(status, "text/plain; charset=utf-8", body.into().into_bytes())
    }

    /// An `application/json` response; a value that cannot be serialised becomes a 500.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::bytes(status, "application/json", body),
            Err(err) => Self::error(500, format!("response not serialisable: {err}")),
        }
    }

    /// The JSON error body every cloudify route uses: `{"error": message}`.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        let body = serde_json::json!({ "error": message.into() });
        Self::bytes(status, "application/json", body.to_string().into_bytes())
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(Tuple2(RString::from(name), RString::from(value)));
        self
    }

    /// Sets header `name` to `value`, replacing any it had (a second `Content-Type` would make
    /// the answer ambiguous).
    pub fn set_header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|kv| !kv.0.eq_ignore_ascii_case(name));
        self.with_header(name, value)
    }

    /// Replaces the body with bytes.
    pub fn with_body(mut self, body: impl Into<RVec<u8>>) -> Self {
        self.body = Body::Bytes(body.into());
        self
    }

    /// The first header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|kv| kv.0.eq_ignore_ascii_case(name)).map(|kv| kv.1.as_str())
    }
}

/// The body of [`Response::stream`]: the plugin's stream, polled under `catch_unwind`.
struct Guarded<S> {
    pieces: Arc<futures::lock::Mutex<Pin<Box<S>>>>,
}

impl<S: Stream<Item = RVec<u8>> + Send + 'static> BodyStream for Guarded<S> {
    fn next_chunk(&mut self) -> FfiFuture<ROption<RVec<u8>>> {
        let pieces = Arc::clone(&self.pieces);
        async move {
            let mut pieces = pieces.lock().await;
            AssertUnwindSafe(pieces.next()).catch_unwind().await.ok().flatten().into()
        }
        .into_ffi()
    }
}

/// The body of [`Response::shared`], piece by piece.
struct Pieces<B> {
    body: Arc<B>,
    at: usize,
}

impl<B: AsRef<[u8]> + Send + Sync + 'static> BodyStream for Pieces<B> {
    fn next_chunk(&mut self) -> FfiFuture<ROption<RVec<u8>>> {
        let bytes = (*self.body).as_ref();
        let end = (self.at + PIECE).min(bytes.len());
        let piece = (self.at < end).then(|| RVec::from(&bytes[self.at..end]));
        self.at = end;
        async move { piece.into() }.into_ffi()
    }
}
