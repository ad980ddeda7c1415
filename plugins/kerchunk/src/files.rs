//! `/files/` and `/files/{name}`: a dataset's source files as a static file server would
//! serve them, with single `Range` requests, validators and preconditions; chunk references
//! of exported reference sets point here.

use std::time::{Duration, SystemTime};

use cloudify_sdk::{Error, ErrorKind, Host, HostExt, LogLevel, RVec, Request, Response};
use cloudify_zarr_store::{
    file_names, file_url, not_modified, parse_range, precondition_failed, range_applies, with_validators,
    ByteRange as Range,
};
use futures::Stream;
use serde_json::json;

use crate::serve::KerchunkService;

/// Largest piece of a file read at once.
const PIECE: u64 = 1 << 20;

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
