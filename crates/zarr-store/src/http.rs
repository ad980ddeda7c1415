//! HTTP answers of store keys: error answers, and the validators (`ETag`, `Last-Modified`,
//! `Cache-Control`) with the conditional requests of RFC 9110 §13.

use std::{sync::Arc, time::SystemTime};

use cloudify_sdk::{Request, Response};

use crate::store::Document;

/// A `200` with `doc`, or `304` when the client's copy is current; with validators and
/// `cache_control` (none when empty). A `doc` nobody else holds (not cached) is sent
/// without a copy.
pub fn reply(
    req: &Request,
    doc: Arc<Document>,
    last_modified: Option<SystemTime>,
    cache_control: &str,
    content_type: &str,
) -> Response {
    let etag = doc.etag.clone();
    let response = if not_modified(req, &etag, last_modified) {
        Response::new(304)
    } else {
        match Arc::try_unwrap(doc) {
            Ok(doc) => Response::bytes(200, content_type, doc.body),
            Err(shared) => Response::shared(200, content_type, shared),
        }
    };
    with_validators(response, &etag, last_modified, cache_control)
}

/// `response` with `ETag`, `Last-Modified` (when known) and `Cache-Control` (when not empty).
pub fn with_validators(
    mut response: Response,
    etag: &str,
    last_modified: Option<SystemTime>,
    cache_control: &str,
) -> Response {
    response = response.with_header("etag", etag);
    if let Some(modified) = last_modified {
        response = response.with_header("last-modified", &httpdate::fmt_http_date(modified));
    }
    if !cache_control.is_empty() {
        response = response.with_header("cache-control", cache_control);
    }
    response
}

/// RFC 9110 §13.1.2–3: `If-None-Match` decides when present, else `If-Modified-Since`.
pub fn not_modified(req: &Request, etag: &str, last_modified: Option<SystemTime>) -> bool {
    if let Some(tags) = req.header("if-none-match") {
        return tags.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag);
    }
    let since = req.header("if-modified-since").and_then(|date| httpdate::parse_http_date(date).ok());
    matches!((since, last_modified), (Some(since), Some(modified)) if modified <= since)
}

/// RFC 9110 §13.1.1 and §13.1.4: whether `If-Match` (strong comparison) or, without it,
/// `If-Unmodified-Since` fails for a representation with `etag` and `last_modified`; the
/// answer is then `412 Precondition Failed`.
pub fn precondition_failed(req: &Request, etag: &str, last_modified: Option<SystemTime>) -> bool {
    if let Some(tags) = req.header("if-match") {
        return !tags.split(',').map(str::trim).any(|tag| tag == "*" || tag == etag);
    }
    let since = req.header("if-unmodified-since").and_then(|date| httpdate::parse_http_date(date).ok());
    match (since, last_modified) {
        (Some(since), Some(modified)) => modified > since,
        // Unknown modification time: the condition cannot be shown to hold.
        (Some(_), None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cloudify_sdk::abi::abi_stable::std_types::{RString, Tuple2};

    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            headers: headers.iter().map(|(k, v)| Tuple2(RString::from(*k), RString::from(*v))).collect(),
            ..Request::default()
        }
    }

    #[test]
    fn conditional_requests() {
        let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(not_modified(&request(&[("if-none-match", "\"a\", \"b\"")]), "\"b\"", None));
        assert!(not_modified(&request(&[("if-none-match", "W/\"b\"")]), "\"b\"", None));
        assert!(!not_modified(&request(&[("if-none-match", "\"a\"")]), "\"b\"", Some(modified)));
        let later = httpdate::fmt_http_date(modified + Duration::from_secs(60));
        let earlier = httpdate::fmt_http_date(modified - Duration::from_secs(60));
        assert!(not_modified(&request(&[("if-modified-since", &later)]), "\"b\"", Some(modified)));
        assert!(!not_modified(&request(&[("if-modified-since", &earlier)]), "\"b\"", Some(modified)));
        assert!(!not_modified(&request(&[("if-modified-since", &later)]), "\"b\"", None));
        // If-None-Match wins over If-Modified-Since.
        assert!(!not_modified(
            &request(&[("if-none-match", "\"a\""), ("if-modified-since", &later)]),
            "\"b\"",
            Some(modified)
        ));
        assert!(!not_modified(&request(&[]), "\"b\"", Some(modified)));
    }

    #[test]
    fn preconditions() {
        let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let later = httpdate::fmt_http_date(modified + Duration::from_secs(60));
        let earlier = httpdate::fmt_http_date(modified - Duration::from_secs(60));
        assert!(!precondition_failed(&request(&[]), "\"b\"", Some(modified)));
        assert!(!precondition_failed(&request(&[("if-match", "\"a\", \"b\"")]), "\"b\"", None));
        assert!(!precondition_failed(&request(&[("if-match", "*")]), "\"b\"", None));
        // Strong comparison: a weak tag never matches.
        assert!(precondition_failed(&request(&[("if-match", "W/\"b\"")]), "\"b\"", None));
        assert!(!precondition_failed(&request(&[("if-unmodified-since", &later)]), "\"b\"", Some(modified)));
        assert!(precondition_failed(&request(&[("if-unmodified-since", &earlier)]), "\"b\"", Some(modified)));
        // If-Match wins over If-Unmodified-Since.
        assert!(!precondition_failed(
            &request(&[("if-match", "\"b\""), ("if-unmodified-since", &earlier)]),
            "\"b\"",
            Some(modified)
        ));
    }
}
