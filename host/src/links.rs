//! The URL clients reach the server at, for the links plugins write (STAC hrefs, intake
//! `urlpath`s, kerchunk targets). Request headers are the client's to choose: taken as they
//! are, an attacker's `Host` ends up in documents other clients download and caches keep. So
//! `server.public_url` wins when set; otherwise `Host` counts only when it names an allowed
//! host, and `X-Forwarded-*` only when the connection comes from a trusted proxy.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::config::ServerConfig;

/// The header the host hands plugins the base URL in (`Request::base_url` reads it).
pub const BASE_URL_HEADER: &str = cloudify_sdk::BASE_URL_HEADER;

/// Hosts always allowed in `Host`: naming this machine links nowhere else.
const LOOPBACK: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// How base URLs are decided.
#[derive(Debug, Clone)]
pub struct Links {
    public_url: Option<String>,
    allowed_hosts: Vec<String>,
    trusted_proxies: Vec<IpNet>,
    /// What links use when the headers are not trusted: `http://` + the listen address.
    fallback: String,
}

impl Links {
    /// The policy of `server`, listening on `bound`.
    ///
    /// # Errors
    /// A `trusted_proxies` entry that is no IP address or network.
    pub fn new(server: &ServerConfig, bound: &str) -> Result<Self, String> {
        let trusted_proxies = server
            .trusted_proxies
            .iter()
            .map(|text| {
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("server.trusted_proxies: {text:?} is no IP address or network"))
            })
            .collect::<Result<_, _>>()?;
        let fallback = format!("http://{}", bound.replace("0.0.0.0", "localhost").replace("[::]", "localhost"));
        Ok(Self {
            public_url: server.public_url.as_ref().map(|url| url.trim_end_matches('/').to_owned()),
            allowed_hosts: server.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            trusted_proxies,
            fallback,
        })
    }

    /// Whether links depend on nothing but the configuration (a warning at start otherwise,
    /// when the server listens beyond this machine).
    pub fn is_configured(&self) -> bool {
        self.public_url.is_some() || !self.allowed_hosts.is_empty()
    }

    fn allowed(&self, authority: &str) -> bool {
        let host = host_part(authority).to_ascii_lowercase();
        LOOPBACK.contains(&host.as_str())
            || self.allowed_hosts.iter().any(|allowed| {
                let allowed = host_part(allowed);
                match allowed.strip_prefix("*.") {
                    Some(domain) => host.strip_suffix(domain).is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
                    None => allowed == host,
                }
            })
    }

    /// The base URL for a request with `headers` from `peer`.
    pub fn base_url(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let header = |name: &str| {
            headers.get(name).and_then(|v| v.to_str().ok()).map(|v| v.split(',').next().unwrap_or_default().trim())
        };
        let proxied = peer.is_some_and(|peer| self.trusted_proxies.iter().any(|net| net.contains(&peer.ip())));
        let (scheme, authority) = if proxied {
            let scheme = header("x-forwarded-proto").filter(|p| matches!(*p, "http" | "https")).unwrap_or("http");
            (scheme, header("x-forwarded-host").or_else(|| header("host")))
        } else {
            ("http", header("host"))
        };
        match authority.filter(|authority| valid_authority(authority) && self.allowed(authority)) {
            Some(authority) => format!("{scheme}://{authority}"),
            None => self.fallback.clone(),
        }
    }
}

/// `host` of `host:port` (IPv6 literals keep their brackets).
fn host_part(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(':') => {
            host
        }
        _ => authority,
    }
}

/// Letters, digits and the punctuation of host names, IPv6 literals and ports only: nothing
/// that changes a URL's meaning or a document's syntax (`/`, `@`, `{`, quotes, spaces).
fn valid_authority(authority: &str) -> bool {
    !authority.is_empty()
        && authority.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn links_come_from_configuration_and_trusted_headers_only() {
        let server = ServerConfig {
            allowed_hosts: vec!["data.example.org".to_owned(), "*.dkrz.de".to_owned()],
            trusted_proxies: vec!["10.0.0.0/8".to_owned()],
            ..ServerConfig::default()
        };
        let links = Links::new(&server, "0.0.0.0:9000").unwrap();
        let client: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        let proxy: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        assert_eq!(
            links.base_url(&headers(&[("host", "data.example.org:8080")]), Some(client)),
            "http://data.example.org:8080"
        );
        assert_eq!(
            links.base_url(&headers(&[("host", "eerie.cloud.dkrz.de")]), Some(client)),
            "http://eerie.cloud.dkrz.de"
        );
        assert_eq!(links.base_url(&headers(&[("host", "127.0.0.1:9000")]), Some(client)), "http://127.0.0.1:9000");
        for hostile in
            ["evil.example.com", "dkrz.de.evil.com", "evil.com/{{ x }}", "data.example.org@evil.com", "xdkrz.de"]
        {
            assert_eq!(
                links.base_url(&headers(&[("host", hostile)]), Some(client)),
                "http://localhost:9000",
                "{hostile}"
            );
        }
        let forwarded =
            headers(&[("host", "10.1.2.3"), ("x-forwarded-host", "data.example.org"), ("x-forwarded-proto", "https")]);
        assert_eq!(links.base_url(&forwarded, Some(proxy)), "https://data.example.org");
        assert_eq!(
            links.base_url(&forwarded, Some(client)),
            "http://localhost:9000",
            "forwarded headers from a client"
        );
        let evil_proxy = headers(&[("x-forwarded-host", "evil.com"), ("x-forwarded-proto", "https")]);
        assert_eq!(links.base_url(&evil_proxy, Some(proxy)), "http://localhost:9000");
        let public = ServerConfig {
            public_url: Some("https://cloud.example.org/cloudify/".to_owned()),
            ..ServerConfig::default()
        };
        let links = Links::new(&public, "127.0.0.1:9000").unwrap();
        assert_eq!(links.base_url(&headers(&[("host", "evil.com")]), None), "https://cloud.example.org/cloudify");
        assert!(Links::new(&ServerConfig { trusted_proxies: vec!["nope".to_owned()], ..ServerConfig::default() }, "x")
            .is_err());
    }
}
