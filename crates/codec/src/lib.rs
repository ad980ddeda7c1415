//! Chunk codecs for cloudify: decode a stored chunk with its source codec chain (NetCDF4's
//! shuffle + zlib, NetCDF3's big-endian bytes, any Zarr v3 chain) and encode chunks for serving,
//! through zarrs' codec pipeline.
//!
//! Decoded chunks are native-endian C-order values of the full chunk shape; cloudify's
//! contract is little-endian, hence the compile-time check below. Chunks of variable-length
//! strings are in the layout of `cloudify_sdk::strings`.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

#[cfg(target_endian = "big")]
compile_error!("cloudify hands decoded chunks out as little-endian and assumes a little-endian host");

use std::{borrow::Cow, num::NonZeroU64};

use cloudify_sdk::{meta::DataType as MetaType, strings};
use serde_json::Value;
use zarrs::{
    array::{
        data_type, ArrayBytes, ArrayBytesOffsets, ArrayToBytesCodecTraits, CodecChain, CodecOptions, DataType,
        FillValue,
    },
    metadata::v3::MetadataV3,
};

/// What can go wrong building or running a codec chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The codec list names a codec zarrs does not know, or an invalid configuration.
    #[error("unsupported codec chain {chain}: {reason}")]
    Unsupported {
        /// The chain as JSON.
        chain: String,
        /// What zarrs said.
        reason: String,
    },
    /// A chunk shape with a zero extent (such arrays have no chunks).
    #[error("chunk shape {0:?} has a zero extent")]
    EmptyChunk(Vec<u64>),
    /// The stored bytes do not decode (corrupt or truncated data).
    #[error("chunk does not decode: {0}")]
    Decode(String),
    /// Bytes handed to `encode` do not match the chunk shape.
    #[error("chunk does not encode: {0}")]
    Encode(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn zarrs_type(dtype: MetaType) -> DataType {
    match dtype {
        MetaType::Bool => data_type::bool(),
        MetaType::Int8 => data_type::int8(),
        MetaType::Int16 => data_type::int16(),
        MetaType::Int32 => data_type::int32(),
        MetaType::Int64 => data_type::int64(),
        // Characters are single bytes to every codec.
        MetaType::Uint8 | MetaType::Char => data_type::uint8(),
        MetaType::Uint16 => data_type::uint16(),
        MetaType::Uint32 => data_type::uint32(),
        MetaType::Uint64 => data_type::uint64(),
        MetaType::Float32 => data_type::float32(),
        MetaType::Float64 => data_type::float64(),
        MetaType::String => data_type::string(),
    }
}

/// A codec chain bound to one array's element type, chunk shape and fill value.
pub struct ChunkCodec {
    chain: CodecChain,
    shape: Vec<NonZeroU64>,
    data_type: DataType,
    fill: FillValue,
    /// Variable-length strings: decoded chunks are in `cloudify_sdk::strings` layout.
    strings: bool,
}

impl std::fmt::Debug for ChunkCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCodec").field("shape", &self.shape).finish_non_exhaustive()
    }
}

impl ChunkCodec {
    /// A codec for chunks of `chunk_shape` elements of `dtype`, encoded by `codecs` (Zarr v3
    /// codec objects), whose fill value is the little-endian element `fill`.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for an unknown codec, [`Error::EmptyChunk`] for a zero extent.
    pub fn new(codecs: &[Value], dtype: MetaType, chunk_shape: &[u64], fill: &[u8]) -> Result<Self> {
        let unsupported =
            |reason: String| Error::Unsupported { chain: Value::from(codecs.to_vec()).to_string(), reason };
        let metadata: Vec<MetadataV3> = codecs
            .iter()
            .map(|c| serde_json::from_value(c.clone()).map_err(|e| unsupported(e.to_string())))
            .collect::<Result<_>>()?;
        let chain = CodecChain::from_metadata(&metadata).map_err(|e| unsupported(e.to_string()))?;
        let shape = chunk_shape
            .iter()
            .map(|&n| NonZeroU64::new(n))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::EmptyChunk(chunk_shape.to_vec()))?;
        Ok(Self {
            chain,
            shape,
            data_type: zarrs_type(dtype),
            fill: FillValue::from(fill.to_vec()),
            strings: dtype.is_variable_length(),
        })
    }

    /// Decodes one stored chunk to the full chunk of values.
    ///
    /// # Errors
    /// [`Error::Decode`] for bytes the chain cannot decode.
    pub fn decode(&self, encoded: &[u8]) -> Result<Vec<u8>> {
        let decoded = self
            .chain
            .decode(encoded.into(), &self.shape, &self.data_type, &self.fill, &CodecOptions::default())
            .map_err(|e| Error::Decode(e.to_string()))?;
        if self.strings {
            let (bytes, offsets) = decoded.into_variable().map_err(|e| Error::Decode(e.to_string()))?.into_parts();
            return Ok(strings::from_offsets(&bytes, &offsets));
        }
        let bytes = decoded.into_fixed().map_err(|e| Error::Decode(e.to_string()))?;
        Ok(bytes.into_owned())
    }

    /// Encodes one full chunk of values.
    ///
    /// # Errors
    /// [`Error::Encode`] when `decoded` does not hold the chunk shape's values.
    pub fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>> {
        let bytes = if self.strings { variable_length(decoded)? } else { ArrayBytes::new_flen(Cow::Borrowed(decoded)) };
        let encoded = self
            .chain
            .encode(bytes, &self.shape, &self.data_type, &self.fill, &CodecOptions::default())
            .map_err(|e| Error::Encode(e.to_string()))?;
        // Compressors write into room for the worst case; a chunk that compresses well would
        // otherwise keep the whole decoded size allocated in every cache that holds it.
        let mut encoded = encoded.into_owned();
        encoded.shrink_to_fit();
        Ok(encoded)
    }
}

/// A chunk of strings as zarrs holds it: the items' bytes back to back, and their offsets.
fn variable_length(chunk: &[u8]) -> Result<ArrayBytes<'static>> {
    let items = strings::decode(chunk).map_err(|e| Error::Encode(e.to_string()))?;
    let mut offsets = Vec::with_capacity(items.len() + 1);
    offsets.push(0);
    let mut bytes = Vec::with_capacity(chunk.len());
    for item in items {
        bytes.extend_from_slice(item);
        offsets.push(bytes.len());
    }
    let offsets = ArrayBytesOffsets::new(offsets).map_err(|e| Error::Encode(e.to_string()))?;
    ArrayBytes::new_vlen(bytes, offsets).map_err(|e| Error::Encode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn big_endian_bytes_decode_to_little_endian_values() {
        let codec = ChunkCodec::new(
            &[json!({"name": "bytes", "configuration": {"endian": "big"}})],
            MetaType::Int16,
            &[3],
            &[0, 0],
        )
        .unwrap();
        let decoded = codec.decode(&[0x01, 0x02, 0xff, 0xfe, 0x00, 0x07]).unwrap();
        let values: Vec<i16> = decoded.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        assert_eq!(values, [0x0102, -2, 7]);
    }

    #[test]
    fn shuffle_zlib_round_trips() {
        let chain = [
            json!({"name": "bytes", "configuration": {"endian": "little"}}),
            json!({"name": "numcodecs.shuffle", "configuration": {"elementsize": 4}}),
            json!({"name": "numcodecs.zlib", "configuration": {"level": 4}}),
        ];
        let codec = ChunkCodec::new(&chain, MetaType::Float32, &[2, 50], &0f32.to_le_bytes()).unwrap();
        let values: Vec<u8> = (0..100).flat_map(|i| (i as f32 * 0.5).to_le_bytes()).collect();
        let encoded = codec.encode(&values).unwrap();
        assert!(encoded.len() < values.len());
        assert_eq!(codec.decode(&encoded).unwrap(), values);
        assert!(matches!(codec.decode(b"not zlib"), Err(Error::Decode(_))));
    }

    #[test]
    fn strings_round_trip_through_vlen_utf8() {
        let chain = [
            json!({"name": "vlen-utf8", "configuration": {}}),
            json!({"name": "zstd", "configuration": {"level": 1, "checksum": false}}),
        ];
        let codec = ChunkCodec::new(&chain, MetaType::String, &[2, 2], b"").unwrap();
        let chunk = strings::encode(["Hamburg", "", "Zürich", "Bonn"]);
        let encoded = codec.encode(&chunk).unwrap();
        assert_eq!(codec.decode(&encoded).unwrap(), chunk);
        // Without a compressor the stored bytes are the layout itself (numcodecs' VLenUTF8).
        let plain = ChunkCodec::new(&chain[..1], MetaType::String, &[4], b"").unwrap();
        assert_eq!(plain.encode(&chunk).unwrap(), chunk);
        assert!(matches!(codec.encode(b"\x09\0\0\0"), Err(Error::Encode(_))));
    }

    #[test]
    fn unknown_codecs_are_refused() {
        let err = ChunkCodec::new(&[json!({"name": "szip"})], MetaType::Int8, &[1], &[0]).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    }
}
