//! HTTP answers of store keys: the validators (`ETag`, `Last-Modified`, `Cache-Control`)
//! and the conditional requests of RFC 9110 §13, parsed and compared by the `headers` crate.

use std::{sync::Arc, time::SystemTime};

use cloudify_sdk::{Request, Response};
use headers::{
    ETag, Header, HeaderValue, IfMatch, IfModifiedSince, IfNoneMatch, IfRange, IfUnmodifiedSince, LastModified,
};

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

/// The typed header `H` of `req`: `None` when absent, `Some(None)` when malformed.
fn condition<H: Header>(req: &Request) -> Option<Option<H>> {
    let text = req.header(H::name().as_str())?;
    let value = HeaderValue::from_str(text).ok();
    Some(value.and_then(|value| H::decode(&mut std::iter::once(&value)).ok()))
}

/// RFC 9110 §13.1.2–3: `If-None-Match` decides when present (weak comparison), else
/// `If-Modified-Since`. Malformed conditions do not hold (the full answer is sent).
pub fn not_modified(req: &Request, etag: &str, last_modified: Option<SystemTime>) -> bool {
    if let Some(tags) = condition::<IfNoneMatch>(req) {
        let etag = etag.parse::<ETag>().ok();
        return matches!((tags, etag), (Some(tags), Some(etag)) if !tags.precondition_passes(&etag));
    }
    match (condition::<IfModifiedSince>(req), last_modified) {
        (Some(Some(since)), Some(modified)) => !since.is_modified(modified),
        _ => false,
    }
}

/// RFC 9110 §13.1.1 and §13.1.4: whether `If-Match` (strong comparison) or, without it,
/// `If-Unmodified-Since` fails for a representation with `etag` and `last_modified`; the
/// answer is then `412 Precondition Failed`. A malformed `If-Match` fails; a malformed date
/// is ignored, as §13.1.4 says.
pub fn precondition_failed(req: &Request, etag: &str, last_modified: Option<SystemTime>) -> bool {
    if let Some(tags) = condition::<IfMatch>(req) {
        let etag = etag.parse::<ETag>().ok();
        return !matches!((tags, etag), (Some(tags), Some(etag)) if tags.precondition_passes(&etag));
    }
    match (condition::<IfUnmodifiedSince>(req), last_modified) {
        (Some(Some(since)), Some(modified)) => !since.precondition_passes(modified),
        // Unknown modification time: the condition cannot be shown to hold.
        (Some(Some(_)), None) => true,
        _ => false,
    }
}

/// RFC 9110 §13.1.5: whether a `Range` applies, i.e. `If-Range` is absent or names the
/// current representation (its entity tag, strong comparison, or its exact modification
/// date); otherwise the whole representation is sent.
pub fn range_applies(req: &Request, etag: &str, last_modified: Option<SystemTime>) -> bool {
    match condition::<IfRange>(req) {
        None => true,
        Some(None) => false,
        Some(Some(if_range)) => {
            let etag = etag.parse::<ETag>().ok();
            !if_range.is_modified(etag.as_ref(), last_modified.map(LastModified::from).as_ref())
        }
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
        // Malformed: the full answer.
        assert!(!not_modified(&request(&[("if-none-match", "b")]), "\"b\"", None));
        assert!(!not_modified(&request(&[("if-modified-since", "yesterday")]), "\"b\"", Some(modified)));
        // An entity tag may hold a comma.
        assert!(not_modified(&request(&[("if-none-match", "\"a,b\"")]), "\"a,b\"", None));
    }

    #[test]
    fn if_range() {
        let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = httpdate::fmt_http_date(modified);
        let earlier = httpdate::fmt_http_date(modified - Duration::from_secs(60));
        assert!(range_applies(&request(&[]), "\"b\"", Some(modified)));
        assert!(range_applies(&request(&[("if-range", "\"b\"")]), "\"b\"", Some(modified)));
        assert!(!range_applies(&request(&[("if-range", "\"a\"")]), "\"b\"", Some(modified)));
        // Strong comparison only.
        assert!(!range_applies(&request(&[("if-range", "W/\"b\"")]), "\"b\"", Some(modified)));
        assert!(range_applies(&request(&[("if-range", &date)]), "\"b\"", Some(modified)));
        assert!(!range_applies(&request(&[("if-range", &earlier)]), "\"b\"", Some(modified)));
        assert!(!range_applies(&request(&[("if-range", "garbage")]), "\"b\"", Some(modified)));
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
        assert!(precondition_failed(&request(&[("if-match", "b")]), "\"b\"", None));
        assert!(!precondition_failed(&request(&[("if-unmodified-since", "soon")]), "\"b\"", Some(modified)));
    }
}
