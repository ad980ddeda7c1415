//! `/web/{file}`: the pages' assets, compiled in.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    io::Write as _,
    sync::OnceLock,
};

use cloudify_sdk::{Request, Response};
use flate2::{write::GzEncoder, Compression};

/// One compiled-in file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// An asset compiled in from `assets/{folder}{name}`.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        asset!("", $name, $content_type)
    };
    ($folder:literal, $name:literal, $content_type:expr) => {
        Asset { name: $name, content_type: $content_type, bytes: include_bytes!(concat!("../assets/", $folder, $name)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: [Asset; 8] = [
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("catalogue.js", JS),
    asset!("dataset.js", JS),
    asset!("docs.js", JS),
    asset!("stats.js", JS),
    asset!("world.svg", "image/svg+xml"),
    asset!("swagger-ui/", "swagger-ui.css", "text/css; charset=utf-8"),
    asset!("swagger-ui/", "swagger-ui-bundle.js", JS),
];

/// Files below this size are sent as they are: compressing them saves little.
const COMPRESS_FROM: usize = 4096;

/// Each asset's validator and gzip form, made on first use.
struct Prepared {
    etag: String,
    gzip: Option<Vec<u8>>,
}

fn prepared(index: usize) -> &'static Prepared {
    static PREPARED: [OnceLock<Prepared>; ASSETS.len()] = [const { OnceLock::new() }; ASSETS.len()];
    PREPARED[index].get_or_init(|| {
        let bytes = ASSETS[index].bytes;
        let mut hasher = DefaultHasher::new();
        bytes.hash(&mut hasher);
        let gzip = (bytes.len() >= COMPRESS_FROM).then(|| {
            let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
            // Writing into a Vec cannot fail.
            encoder.write_all(bytes).and_then(|()| encoder.finish()).unwrap_or_default()
        });
        Prepared { etag: format!("\"{:016x}\"", hasher.finish()), gzip: gzip.filter(|g| !g.is_empty()) }
    })
}

/// Whether the client takes gzip (`Accept-Encoding: gzip`, not `gzip;q=0`).
fn accepts_gzip(req: &Request) -> bool {
    req.header("accept-encoding").is_some_and(|value| {
        value.split(',').any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            parts.next().is_some_and(|name| name.eq_ignore_ascii_case("gzip"))
                && !parts
                    .any(|p| p.replace(' ', "").starts_with("q=0") && !p.contains(|c: char| ('1'..='9').contains(&c)))
        })
    })
}

/// `GET /web/{file}`.
pub(crate) fn answer(req: &Request) -> Response {
    let name = req.param("file").unwrap_or_default();
    let Some(index) = ASSETS.iter().position(|asset| asset.name == name) else {
        return cloudify_sdk::Error::not_found(format!("no asset '{name}'")).into();
    };
    let (asset, prepared) = (&ASSETS[index], prepared(index));
    if req.header("if-none-match").is_some_and(|tags| tags.split(',').any(|t| t.trim() == prepared.etag)) {
        return Response::new(304).with_header("etag", &prepared.etag);
    }
    let response = match &prepared.gzip {
        Some(gzip) if accepts_gzip(req) => {
            Response::bytes(200, asset.content_type, gzip.clone()).with_header("content-encoding", "gzip")
        }
        _ => Response::bytes(200, asset.content_type, asset.bytes.to_vec()),
    };
    response
        .with_header("etag", &prepared.etag)
        .with_header("cache-control", "public, max-age=3600")
        .with_header("vary", "accept-encoding")
}
