//! The dataset metadata schema: what `HostApi::dataset_metadata` answers as JSON text.
//!
//! It describes a dataset as a group of arrays, like a Zarr hierarchy: dimensions, global
//! attributes, and per variable its data type, dimension names, shape, chunk shape,
//! attributes (CF: `units`, `calendar`, `scale_factor`, ...), fill value and source codecs.
//! The JSON is the contract; these serde types are a convenience for Rust plugins.

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Metadata of one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetMeta {
    /// The dataset id, as in `/datasets/{id}`.
    pub id: String,
    /// Global attributes.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// Dimension names and sizes, in file order.
    pub dimensions: IndexMap<String, u64>,
    /// Names of unlimited (record) dimensions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unlimited: Vec<String>,
    /// Variables in file order, coordinates included. Variables of an element type this SDK
    /// does not know (sent by a newer host or plugin) are left out when reading.
    #[serde(deserialize_with = "known_variables")]
    pub variables: IndexMap<String, VariableMeta>,
    /// When the source data last changed (Unix seconds; the newest file of a multi-file
    /// dataset), for HTTP `Last-Modified`; `None` when unknown (remote sources, memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<i64>,
}

/// The variables of a dataset, without those whose `dtype` names a type this SDK does not
/// know: `DataType` grows with new versions (as `char` and `string` did), and a plugin built
/// before serves the variables it understands instead of refusing the whole dataset.
fn known_variables<'de, D: Deserializer<'de>>(deserializer: D) -> Result<IndexMap<String, VariableMeta>, D::Error> {
    let raw = IndexMap::<String, Value>::deserialize(deserializer)?;
    let mut known = IndexMap::with_capacity(raw.len());
    for (name, value) in raw {
        let unknown_type =
            value.get("dtype").and_then(Value::as_str).is_some_and(|name| DataType::from_name(name).is_none());
        if unknown_type {
            continue;
        }
        known.insert(name, VariableMeta::deserialize(value).map_err(serde::de::Error::custom)?);
    }
    Ok(known)
}

/// Metadata of one variable (array).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariableMeta {
    /// Element type of the values (as stored: packed variables keep their packed type).
    pub dtype: DataType,
    /// Dimension names, one per axis (empty for scalars).
    pub dimensions: Vec<String>,
    /// Array shape.
    pub shape: Vec<u64>,
    /// Chunk shape (equal to `shape` for unchunked variables).
    pub chunks: Vec<u64>,
    /// Variable attributes.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// The fill value: a JSON number or bool, or `"NaN"`, `"Infinity"`, `"-Infinity"`;
    /// `null` when the variable has none.
    #[serde(default)]
    pub fill_value: Value,
    /// The source codec chain of the stored chunks, as Zarr v3 codec objects
    /// (`{"name": "bytes", "configuration": {"endian": "little"}}`, ...).
    #[serde(default)]
    pub codecs: Vec<Value>,
}

/// Element types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// `bool`
    Bool,
    /// `int8`
    Int8,
    /// `int16`
    Int16,
    /// `int32`
    Int32,
    /// `int64`
    Int64,
    /// `uint8`
    Uint8,
    /// `uint16`
    Uint16,
    /// `uint32`
    Uint32,
    /// `uint64`
    Uint64,
    /// `float32`
    Float32,
    /// `float64`
    Float64,
    /// One 8-bit character (NetCDF `char`); text is an array of them along its last dimension.
    Char,
    /// A variable-length UTF-8 string (NetCDF4 `string`, Zarr `string`). Its decoded chunks
    /// are not fixed-size values but the layout of [`crate::strings`].
    String,
}

impl DataType {
    /// The type named `name` in the metadata JSON (`float32`, `string`, ...).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(name)).ok()
    }

    /// Bytes per element; 0 for variable-length strings (see [`DataType::is_variable_length`]).
    pub fn size(self) -> usize {
        match self {
            Self::String => 0,
            Self::Bool | Self::Int8 | Self::Uint8 | Self::Char => 1,
            Self::Int16 | Self::Uint16 => 2,
            Self::Int32 | Self::Uint32 | Self::Float32 => 4,
            Self::Int64 | Self::Uint64 | Self::Float64 => 8,
        }
    }

    /// Whether elements differ in size, so that chunks cannot be sliced by element offsets.
    pub fn is_variable_length(self) -> bool {
        self == Self::String
    }

    /// The numpy/xarray name (`float32`), as in xpublish's `/info` (strings are `object`, as
    /// xarray shows NetCDF4 strings).
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "object",
            Self::Bool => "bool",
            Self::Int8 => "int8",
            Self::Int16 => "int16",
            Self::Int32 => "int32",
            Self::Int64 => "int64",
            Self::Uint8 => "uint8",
            Self::Uint16 => "uint16",
            Self::Uint32 => "uint32",
            Self::Uint64 => "uint64",
            Self::Float32 => "float32",
            Self::Float64 => "float64",
            Self::Char => "|S1",
        }
    }

    /// One element of this type holding `value`, little-endian: a JSON number or bool, `"NaN"`,
    /// `"Infinity"`, `"-Infinity"`, or text (its first byte, for characters; its UTF-8 bytes,
    /// for strings); zero otherwise (the empty string).
    pub fn element(self, value: &Value) -> Vec<u8> {
        let float = match value {
            Value::String(s) if s == "NaN" => Some(f64::NAN),
            Value::String(s) if s == "Infinity" => Some(f64::INFINITY),
            Value::String(s) if s == "-Infinity" => Some(f64::NEG_INFINITY),
            Value::String(s) => s.bytes().next().map(f64::from),
            Value::Number(n) => n.as_f64(),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            _ => None,
        };
        let int = value.as_i64().or_else(|| float.map(|f| f as i64)).unwrap_or(0);
        let uint = value.as_u64().unwrap_or(int as u64);
        let float = float.unwrap_or(0.0);
        match self {
            Self::Bool | Self::Uint8 | Self::Char => vec![uint as u8],
            Self::Int8 => (int as i8).to_le_bytes().to_vec(),
            Self::Int16 => (int as i16).to_le_bytes().to_vec(),
            Self::Int32 => (int as i32).to_le_bytes().to_vec(),
            Self::Int64 => int.to_le_bytes().to_vec(),
            Self::Uint16 => (uint as u16).to_le_bytes().to_vec(),
            Self::Uint32 => (uint as u32).to_le_bytes().to_vec(),
            Self::Uint64 => uint.to_le_bytes().to_vec(),
            Self::Float32 => (float as f32).to_le_bytes().to_vec(),
            Self::Float64 => float.to_le_bytes().to_vec(),
            Self::String => value.as_str().unwrap_or_default().as_bytes().to_vec(),
        }
    }

    /// The little-endian numpy type string (`<f4`), as in Zarr v2's `.zarray`.
    pub fn numpy_le(self) -> &'static str {
        match self {
            Self::Bool => "|b1",
            Self::Int8 => "|i1",
            Self::Int16 => "<i2",
            Self::Int32 => "<i4",
            Self::Int64 => "<i8",
            Self::Uint8 => "|u1",
            Self::Uint16 => "<u2",
            Self::Uint32 => "<u4",
            Self::Uint64 => "<u8",
            Self::Float32 => "<f4",
            Self::Float64 => "<f8",
            Self::Char => "|S1",
            Self::String => "|O",
        }
    }
}

impl DatasetMeta {
    /// Names of coordinate variables: those named like a dimension, and those listed in any
    /// variable's CF `coordinates` attribute, in variable order.
    pub fn coordinate_names(&self) -> Vec<&str> {
        let listed: Vec<&str> = self
            .variables
            .values()
            .filter_map(|var| var.attributes.get("coordinates").and_then(Value::as_str))
            .flat_map(str::split_whitespace)
            .collect();
        self.variables
            .keys()
            .map(String::as_str)
            .filter(|name| self.dimensions.contains_key(*name) || listed.contains(name))
            .collect()
    }
}

impl VariableMeta {
    /// Number of chunks along each axis.
    pub fn chunk_grid(&self) -> Vec<u64> {
        self.shape.iter().zip(&self.chunks).map(|(&n, &c)| if c == 0 { 0 } else { n.div_ceil(c) }).collect()
    }

    /// Bytes of one decoded chunk (the full chunk shape); 0 for variable-length strings.
    pub fn chunk_bytes(&self) -> u64 {
        self.chunks.iter().product::<u64>() * self.dtype.size() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_of_unknown_types_are_left_out_and_the_rest_is_read() {
        let json = r#"{"id":"d","dimensions":{"x":2},"variables":{
            "z":{"dtype":"complex64","dimensions":["x"],"shape":[2],"chunks":[2],"novel":1},
            "v":{"dtype":"int16","dimensions":["x"],"shape":[2],"chunks":[1]}}}"#;
        let meta: DatasetMeta = serde_json::from_str(json).unwrap();
        assert_eq!(meta.variables.keys().collect::<Vec<_>>(), ["v"]);
        assert_eq!(DataType::from_name("string"), Some(DataType::String));
        // A known type with a broken description is still an error, not silently dropped.
        let broken = r#"{"id":"d","dimensions":{},"variables":{"v":{"dtype":"int16","shape":"x"}}}"#;
        assert!(serde_json::from_str::<DatasetMeta>(broken).is_err());
    }

    #[test]
    fn json_round_trip_keeps_order_and_names() {
        let json = r#"{"id":"d","dimensions":{"time":2,"lat":3},"variables":{
            "tas":{"dtype":"float32","dimensions":["time","lat"],"shape":[2,3],"chunks":[1,3],
                   "attributes":{"coordinates":"height"},"fill_value":"NaN"},
            "lat":{"dtype":"float64","dimensions":["lat"],"shape":[3],"chunks":[3]},
            "height":{"dtype":"float64","dimensions":[],"shape":[],"chunks":[]}}}"#;
        let meta: DatasetMeta = serde_json::from_str(json).unwrap();
        assert_eq!(meta.variables.keys().collect::<Vec<_>>(), ["tas", "lat", "height"]);
        assert_eq!(meta.coordinate_names(), ["lat", "height"]);
        assert_eq!(meta.variables["tas"].chunk_grid(), [2, 1]);
        assert_eq!(meta.variables["tas"].chunk_bytes(), 12);
        assert_eq!(meta.variables["tas"].dtype.numpy_le(), "<f4");
        let back: DatasetMeta = serde_json::from_str(&serde_json::to_string(&meta).unwrap()).unwrap();
        assert_eq!(back, meta);
    }

    #[test]
    fn elements_from_json_fill_values() {
        use serde_json::json;
        assert!(f32::from_le_bytes(DataType::Float32.element(&json!("NaN")).try_into().unwrap()).is_nan());
        assert_eq!(DataType::Float64.element(&json!("-Infinity")), f64::NEG_INFINITY.to_le_bytes());
        assert_eq!(DataType::Int16.element(&json!(-999)), (-999i16).to_le_bytes());
        assert_eq!(DataType::Uint64.element(&json!(18_446_744_073_709_551_614u64)), (u64::MAX - 1).to_le_bytes());
        assert_eq!(DataType::Char.element(&json!("x")), b"x");
        assert_eq!(DataType::Uint8.element(&Value::Null), [0]);
        assert_eq!(DataType::String.element(&json!("NaN")), b"NaN");
        assert_eq!(DataType::String.element(&Value::Null), b"");
    }

    #[test]
    fn strings_are_named_as_xarray_and_numpy_name_them() {
        let var: VariableMeta =
            serde_json::from_str(r#"{"dtype":"string","dimensions":["station"],"shape":[3],"chunks":[3]}"#).unwrap();
        assert_eq!((var.dtype.name(), var.dtype.numpy_le()), ("object", "|O"));
        assert!(var.dtype.is_variable_length() && !DataType::Char.is_variable_length());
        assert_eq!(var.chunk_bytes(), 0);
    }
}
