//! Decoded chunks of variable-length strings ([`DataType::String`](crate::meta::DataType)).
//!
//! Such a chunk holds one string per element of the full chunk shape, in C order, laid out
//! as numcodecs' `VLenUTF8` writes it (Zarr's `vlen-utf8` codec): a little-endian `u32` item
//! count, then per item a little-endian `u32` byte length and the UTF-8 bytes. The layout is
//! self-delimiting, so it crosses the plugin boundary as plain bytes, and it is already what
//! a Zarr store serves before compression.

/// A chunk that is not in the layout above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed string chunk: {}", self.0)
    }
}

impl std::error::Error for Malformed {}

/// The chunk holding `items`, in order.
pub fn encode<I, S>(items: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    let mut out = vec![0; 4];
    let mut count = 0u32;
    for item in items {
        let item = item.as_ref();
        out.extend_from_slice(&(item.len() as u32).to_le_bytes());
        out.extend_from_slice(item);
        count += 1;
    }
    out[..4].copy_from_slice(&count.to_le_bytes());
    out
}

/// The chunk holding the items that `offsets` (one more than there are items, rising)
/// delimit in `bytes`, as a variable-length array holds them.
pub fn from_offsets(bytes: &[u8], offsets: &[usize]) -> Vec<u8> {
    encode(offsets.windows(2).map(|w| &bytes[w[0]..w[1]]))
}

/// A chunk of `count` copies of `text`.
pub fn filled(text: &[u8], count: usize) -> Vec<u8> {
    encode(std::iter::repeat_n(text, count))
}

/// The items of `chunk`, as bytes (UTF-8 unless the source broke its promise).
///
/// # Errors
/// [`Malformed`] when the lengths run past the end or leave bytes over.
pub fn decode(chunk: &[u8]) -> Result<Vec<&[u8]>, Malformed> {
    let word = |at: usize| -> Result<usize, Malformed> {
        let bytes = chunk.get(at..at + 4).ok_or_else(|| Malformed(format!("truncated at byte {at}")))?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
    };
    let count = word(0)?;
    // Every item takes at least its length word: a count beyond that is a lie, not a size hint.
    if count > chunk.len() / 4 {
        return Err(Malformed(format!("{count} items cannot fit in {} bytes", chunk.len())));
    }
    let mut items = Vec::with_capacity(count);
    let mut at = 4;
    for _ in 0..count {
        let len = word(at)?;
        let item =
            chunk.get(at + 4..at + 4 + len).ok_or_else(|| Malformed(format!("item at byte {at} runs past the end")))?;
        items.push(item);
        at += 4 + len;
    }
    if at != chunk.len() {
        return Err(Malformed(format!("{} bytes left over after {count} items", chunk.len() - at)));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_numcodecs_layout() {
        let chunk = encode(["ab", "", "Zürich"]);
        // numcodecs.VLenUTF8().encode(np.array(["ab", "", "Zürich"], dtype=object))
        let expected = b"\x03\0\0\0\x02\0\0\0ab\0\0\0\0\x07\0\0\0Z\xc3\xbcrich";
        assert_eq!(chunk, expected);
        assert_eq!(decode(&chunk).unwrap(), [&b"ab"[..], b"", "Zürich".as_bytes()]);
        assert_eq!(decode(&filled(b"x", 2)).unwrap(), [b"x", b"x"]);
        assert_eq!(from_offsets(b"abZ\xc3\xbcrich", &[0, 2, 2, 9]), encode(["ab", "", "Zürich"]));
        assert_eq!(decode(&encode::<[&str; 0], _>([])).unwrap(), Vec::<&[u8]>::new());
    }

    #[test]
    fn malformed_chunks_are_refused() {
        assert!(decode(b"").is_err());
        assert!(decode(b"\x01\0\0\0\x05\0\0\0ab").is_err());
        assert!(decode(b"\xff\xff\xff\x7f").is_err());
        assert!(decode(b"\x01\0\0\0\x01\0\0\0abc").is_err());
    }
}
