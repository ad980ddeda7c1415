//! Store keys under `/datasets/{id}/zarr/`: metadata documents of Zarr v2 and v3, and chunk
//! keys (`tas/0.1.2` in v2, `tas/c/0/1/2` in v3, `height/0` and `height/c` for scalars).

/// The Zarr format a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Zarr v2.
    V2,
    /// Zarr v3.
    V3,
}

/// What a key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key<'k> {
    /// A metadata document: of the root group (`var` is `None`) or of one array.
    Metadata {
        /// The array the document describes.
        var: Option<&'k str>,
    },
    /// One chunk of a variable; a v2 scalar's `0` arrives as `[0]` (see [`chunk_index`]).
    Chunk {
        /// Variable name.
        var: &'k str,
        /// Chunk grid index as written in the key.
        index: Vec<u64>,
        /// Key syntax.
        format: Format,
    },
}

/// Parses a store key; `None` when it is no Zarr key this store could hold.
pub fn parse(key: &str) -> Option<Key<'_>> {
    if matches!(key, ".zmetadata" | ".zgroup" | ".zattrs" | "zarr.json") {
        return Some(Key::Metadata { var: None });
    }
    let (var, rest) = key.split_once('/')?;
    if var.is_empty() {
        return None;
    }
    let (parts, format) = match rest {
        ".zarray" | ".zattrs" | "zarr.json" => return Some(Key::Metadata { var: Some(var) }),
        "c" => return Some(Key::Chunk { var, index: Vec::new(), format: Format::V3 }),
        _ => match rest.strip_prefix("c/") {
            Some(v3) => (v3.split('/').collect::<Vec<_>>(), Format::V3),
            None => (rest.split('.').collect(), Format::V2),
        },
    };
    let index = parts.iter().map(|p| integer(p)).collect::<Option<Vec<u64>>>()?;
    Some(Key::Chunk { var, index, format })
}

/// A decimal chunk coordinate (no sign, no empty string).
fn integer(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The grid index a chunk key names for an array of `rank` dimensions: v2 writes a scalar's
/// only chunk as `0`.
pub fn chunk_index(index: &[u64], format: Format, rank: usize) -> Option<Vec<u64>> {
    match (format, rank, index) {
        (Format::V2, 0, [0]) => Some(Vec::new()),
        _ if index.len() == rank => Some(index.to_vec()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_and_chunks_of_both_formats() {
        assert_eq!(parse(".zmetadata"), Some(Key::Metadata { var: None }));
        assert_eq!(parse("zarr.json"), Some(Key::Metadata { var: None }));
        assert_eq!(parse("tas/.zarray"), Some(Key::Metadata { var: Some("tas") }));
        assert_eq!(parse("tas/zarr.json"), Some(Key::Metadata { var: Some("tas") }));
        assert_eq!(parse("tas/.zgroup"), None);
        assert_eq!(parse("tas/0.1.2"), Some(Key::Chunk { var: "tas", index: vec![0, 1, 2], format: Format::V2 }));
        assert_eq!(parse("tas/c/0/1/2"), Some(Key::Chunk { var: "tas", index: vec![0, 1, 2], format: Format::V3 }));
        assert_eq!(parse("height/c"), Some(Key::Chunk { var: "height", index: vec![], format: Format::V3 }));
        assert_eq!(parse("time.bnds/3"), Some(Key::Chunk { var: "time.bnds", index: vec![3], format: Format::V2 }));
    }

    #[test]
    fn malformed_keys_are_refused() {
        for key in [
            "",
            "/0",
            "tas",
            "tas/",
            "tas/0..1",
            "tas/-1",
            "tas/+1",
            "tas/c/",
            "tas/c/0//1",
            "tas/a.b",
            "tas/99999999999999999999999",
        ] {
            assert_eq!(parse(key), None, "{key}");
        }
    }

    #[test]
    fn scalar_keys_map_to_the_empty_index() {
        assert_eq!(chunk_index(&[0], Format::V2, 0), Some(vec![]));
        assert_eq!(chunk_index(&[], Format::V3, 0), Some(vec![]));
        assert_eq!(chunk_index(&[1], Format::V2, 0), None);
        assert_eq!(chunk_index(&[1, 2], Format::V3, 3), None);
        assert_eq!(chunk_index(&[1, 2], Format::V2, 2), Some(vec![1, 2]));
    }
}
