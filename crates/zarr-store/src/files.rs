//! A dataset's source files at this server (`/datasets/{id}/files/{name}`, which the kerchunk
//! plugin serves and exported references point at): their names, their URLs, and the byte
//! range a request asks of one.

use http_range_header::{EndPosition, RangeUnsatisfiableError, StartPosition};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Characters left as they are in a file name within a URL path.
const NAME: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// A name per file, in order: the file name, prefixed by its position where names repeat
/// (files of several folders).
pub fn file_names(files: &[String]) -> Vec<String> {
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
pub fn file_url(base: &str, id: &str, name: &str) -> String {
    let id = utf8_percent_encode(id, NAME);
    format!("{base}/datasets/{id}/files/{}", utf8_percent_encode(name, NAME))
}

/// A byte range asked for, resolved against the file size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// The whole file (no `Range`, several ranges, or another unit).
    Whole,
    /// `length` bytes from `start`.
    Part {
        /// The first byte.
        start: u64,
        /// How many bytes.
        length: u64,
    },
    /// Outside the file: `416`.
    Unsatisfiable,
}

/// RFC 9110 §14.1.2: one `bytes=` range of a file of `size` bytes. The syntax is
/// http-range-header's; what a range means for a file of this size is decided here, as RFC
/// 9110 says (a suffix longer than the file is the whole file, a last position past the end
/// is the end).
pub fn parse_range(header: Option<&str>, size: u64) -> Range {
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
