//! `/files/` and `/files/{name}`: a dataset's source files as a static file server would
//! serve them, with single `Range` requests, validators and preconditions; chunk references
//! of exported reference sets point here.

use std::time::{Duration, SystemTime};

use cloudify_sdk::{Error, ErrorKind, Host, HostExt, LogLevel, RVec, Request, Response};
use cloudify_zarr_store::{not_modified, precondition_failed, range_applies, with_validators};
use futures::Stream;
use http_range_header::{EndPosition, RangeUnsatisfiableError, StartPosition};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::json;

use crate::serve::KerchunkService;

/// Largest piece of a file read at once.
const PIECE: u64 = 1 << 20;

/// Characters left as they are in a file name within a URL path.
const NAME: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// A name per file, in order: the file name, prefixed by its position where names repeat
/// (files of several folders).
pub(crate) fn file_names(files: &[String]) -> Vec<String> {
    let base = |file: &String| -> String {
        let path = file.split(['?', '#']).next().unwrap_or_default().trim_end_matches('/');
        path.rsplit('/').next().unwrap_or(path).to_owned()
    };
    let names: Vec<String> = files.iter().map(base).collect();
    names
        .iter()
        .enumerate()
        .map(
            |(i, name)| {
                if names.iter().filter(|n| *n == name).count() > 1 {
                    format!("{i}-{name}")
                } else {
                    name.clone()
                }
            },
        )
        .collect()
}

/// The URL of file `name` of dataset `id` at this server.
pub(crate) fn file_url(base: &str, id: &str, name: &str) -> String {
    let id = utf8_percent_encode(id, NAME);
    format!("{base}/datasets/{id}/files/{}", utf8_percent_encode(name, NAME))
}

/// A byte range asked for, resolved against the file size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range {
    /// The whole file (no `Range`, several ranges, or another unit).
    Whole,
    /// `length` bytes from `start`.
    Part { start: u64, length: u64 },
    /// Outside the file: `416`.
    Unsatisfiable,
}

/// RFC 9110 §14.1.2: one `bytes=` range of a file of `size` bytes. The syntax is
/// http-range-header's; what a range means for a file of this size is decided here, as RFC
/// 9110 says (a suffix longer than the file is the whole file, a last position past the end
/// is the end).
fn parse_range(header: Option<&str>, size: u64) -> Range {
    let Some(header) = header else {
        return Range::Whole;
    };
    let parsed = match http_range_header::parse_range_header(header.trim()) {
        Ok(parsed) => parsed,
        // `bytes=-0`: a suffix of nothing.
        Err(RangeUnsatisfiableError::ZeroSuffix) => return Range::Unsatisfiable,
        // Another unit or a malformed set: a server may ignore the header.
        Err(_) => return Range::Whole,
    };
    // Several ranges would need multipart/byteranges; the whole file is a valid answer.
    let [range] = parsed.ranges.as_slice() else {
        return Range::Whole;
    };
    let (start, end) = match (range.start, range.end) {
        (StartPosition::FromLast(n), _) => (size.saturating_sub(n), size),
        (StartPosition::Index(first), EndPosition::LastByte) => (first, size),
        (StartPosition::Index(first), EndPosition::Index(last)) if last >= first => {
            (first, last.saturating_add(1).min(size))
        }
        // `bytes=5-2` is no range at all: ignored.
        (StartPosition::Index(_), EndPosition::Index(_)) => return Range::Whole,
    };
    if start >= size {
        return Range::Unsatisfiable;
    }
    Range::Part { start, length: end - start }
}

impl KerchunkService {
    /// Answers `GET /datasets/{id}/files/`: name, size, modification time and URL per file.
    pub(crate) async fn file_list(&self, host: &Host, req: &Request) -> Response {
        let id = req.dataset_id().unwrap_or_default();
        let files = match host.dataset_files(id) {
            Ok(files) => files,
            Err(err) => return err.into(),
        };
        let base = req.base_url();
        let mut listing = Vec::new();
        for (file, name) in files.iter().zip(file_names(&files)) {
            let stat = host.file_stat(id, file).await.ok();
            listing.push(json!({
                "name": name,
                "url": file_url(&base, id, &name),
                "size": stat.map(|s| s.size),
                "last_modified": stat.map(|s| httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(s.modified.max(0) as u64))),
            }));
        }
        Response::json(200, &listing)
    }

    /// Answers `GET`/`HEAD /datasets/{id}/files/{name}`.
    pub(crate) async fn file(&self, host: &Host, req: &Request) -> Response {
        self.try_file(host, req).await.unwrap_or_else(Response::from)
    }

    async fn try_file(&self, host: &Host, req: &Request) -> Result<Response, Error> {
        let id = req.dataset_id().unwrap_or_default();
        let name = req.param("name").unwrap_or_default().to_owned();
        let files = host.dataset_files(id)?;
        let file = file_names(&files)
            .iter()
            .position(|n| *n == name)
            .map(|i| files[i].clone())
            .ok_or_else(|| Error::not_found(format!("dataset '{id}' has no source file '{name}'")))?;
        let stat = host.file_stat(id, &file).await?;
        let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(stat.modified.max(0) as u64);
        // nginx's form: changes whenever the size or the modification time does.
        let etag = format!("\"{:x}-{:x}\"", stat.modified, stat.size);
        let cache_control = self.config.cache_control.as_str();
        let answer = |status: u16| with_validators(Response::new(status), &etag, Some(modified), cache_control);
        if precondition_failed(req, &etag, Some(modified)) {
            let failed =
                Error::new(ErrorKind::PRECONDITION_FAILED, format!("'{name}' does not match the precondition"));
            return Ok(with_validators(failed.into(), &etag, Some(modified), cache_control));
        }
        if not_modified(req, &etag, Some(modified)) {
            return Ok(answer(304));
        }
        // If-Range: a range of another version would be garbage; send the whole file.
        let range = if range_applies(req, &etag, Some(modified)) {
            parse_range(req.header("range"), stat.size)
        } else {
            Range::Whole
        };
        let (status, start, length) = match range {
            Range::Whole => (200, 0, stat.size),
            Range::Part { start, length } => (206, start, length),
            Range::Unsatisfiable => {
                let outside = Error::new(
                    ErrorKind::RANGE_NOT_SATISFIABLE,
                    format!("range outside the {} bytes of '{name}'", stat.size),
                );
                let response = with_validators(outside.into(), &etag, Some(modified), cache_control);
                return Ok(response.with_header("content-range", &format!("bytes */{}", stat.size)));
            }
        };
        let mut response = answer(status)
            .with_header("content-type", "application/octet-stream")
            .with_header("accept-ranges", "bytes")
            .with_header("content-length", &length.to_string());
        if status == 206 {
            let range = format!("bytes {start}-{}/{}", start + length - 1, stat.size);
            response = response.with_header("content-range", &range);
        }
        if req.is_head() || length == 0 {
            return Ok(response);
        }
        if length <= PIECE {
            return Ok(response.with_body(host.read_file(id, &file, start, length).await?));
        }
        Ok(response.with_stream(file_pieces(host.clone(), id.to_owned(), file, start, start + length)))
    }
}

/// A file range read piece by piece as the client takes it.
fn file_pieces(host: Host, dataset: String, file: String, start: u64, end: u64) -> impl Stream<Item = RVec<u8>> + Send {
    futures::stream::unfold(start, move |at| {
        let (host, dataset, file) = (host.clone(), dataset.clone(), file.clone());
        async move {
            let length = PIECE.min(end.checked_sub(at)?);
            if length == 0 {
                return None;
            }
            match host.read_file(&dataset, &file, at, length).await {
                Ok(bytes) => Some((bytes, at + length)),
                Err(err) => {
                    // The status is sent: a short body is all the client can be told.
                    host.log(LogLevel::Error, &format!("reading {file} at {at}: {err}"));
                    None
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), Range::Whole);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Range::Part { start: 0, length: 10 });
        assert_eq!(parse_range(Some("bytes=90-"), 100), Range::Part { start: 90, length: 10 });
        assert_eq!(parse_range(Some("bytes=90-1000"), 100), Range::Part { start: 90, length: 10 });
        assert_eq!(parse_range(Some("bytes=-10"), 100), Range::Part { start: 90, length: 10 });
        assert_eq!(parse_range(Some("bytes=-1000"), 100), Range::Part { start: 0, length: 100 });
        assert_eq!(parse_range(Some("bytes=100-"), 100), Range::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), Range::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 100), Range::Whole);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Range::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 100), Range::Whole);
        assert_eq!(parse_range(Some("bytes=a-b"), 100), Range::Whole);
    }

    #[test]
    fn names_are_unique_and_urls_escaped() {
        let files = ["/data/a/tas.nc", "/data/b/tas.nc", "https://h/x/pr.nc?sig=1", "/d/c.nc"].map(String::from);
        assert_eq!(file_names(&files), ["0-tas.nc", "1-tas.nc", "pr.nc", "c.nc"]);
        assert_eq!(file_url("http://h", "my data", "a b.nc"), "http://h/datasets/my%20data/files/a%20b.nc");
    }
}
