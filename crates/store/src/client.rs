//! The HTTP client of `http(s)://` stores: object_store's, except that redirects are followed
//! on the host that was asked only. A reference set's targets are checked against the hosts
//! the operator allows (see [`crate::Confinement`]); a redirect to another host (an internal
//! address, a metadata service) would step around that check.

use std::time::Duration;

use object_store::{
    client::{HttpClient, HttpConnector},
    ClientOptions,
};
use reqwest::redirect::{Action, Attempt, Policy};

/// Time to connect to a remote host.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for one remote request, body included.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Redirects followed for one request (on the same host).
const MAX_REDIRECTS: usize = 5;

/// Builds the client of an HTTP store; every request carries `headers`.
#[derive(Debug, Default)]
pub(crate) struct SameHostClient {
    headers: http::HeaderMap,
}

impl SameHostClient {
    pub(crate) fn new(headers: http::HeaderMap) -> Self {
        Self { headers }
    }
}

impl HttpConnector for SameHostClient {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("cloudify/", env!("CARGO_PKG_VERSION")))
            .default_headers(self.headers.clone())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // Sizes come from Content-Length, which decompression would change.
            .no_gzip()
            .no_brotli()
            .no_zstd()
            .no_deflate()
            .redirect(Policy::custom(same_host))
            .build()
            .map_err(|err| object_store::Error::Generic { store: "HTTP", source: Box::new(err) })?;
        Ok(HttpClient::new(client))
    }
}

fn same_host(attempt: Attempt<'_>) -> Action {
    let asked = attempt.previous().first().and_then(|url| url.host_str().map(str::to_owned));
    if attempt.previous().len() > MAX_REDIRECTS {
        attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
    } else if attempt.url().host_str() != asked.as_deref() {
        let to = attempt.url().to_string();
        attempt.error(format!("redirect to another host ({to}) refused"))
    } else {
        attempt.follow()
    }
}
