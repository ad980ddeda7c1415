//! Conveniences on [`Request`] and [`Response`], so handlers rarely touch `RString`/`RVec`.

use abi_stable::std_types::{RString, RVec, Tuple2};
use serde::Serialize;

use crate::abi::{Body, Request, Response};

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

    /// The URL this server is reached at (`http://host:port`), from `Host` and
    /// `X-Forwarded-Proto`/`X-Forwarded-Host`, for links in catalogs.
    pub fn base_url(&self) -> String {
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
