//! Attribute values as JSON, and the netCDF default fill values.

use cloudify_dataset::DataType;
use serde_json::{json, Value};

/// A float as JSON: non-finite values become the strings Zarr uses (`"NaN"`, `"Infinity"`).
pub(crate) fn float(value: f64) -> Value {
    if value.is_nan() {
        json!("NaN")
    } else if value.is_infinite() {
        json!(if value > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(value)
    }
}

/// One value as a scalar, several as a list (how xarray shows attributes).
pub(crate) fn scalar_or_list(mut values: Vec<Value>) -> Value {
    if values.len() == 1 {
        values.remove(0)
    } else {
        Value::Array(values)
    }
}

/// The value netCDF gives elements never written when a variable declares no `_FillValue`.
pub(crate) fn default_fill(dtype: DataType) -> Value {
    match dtype {
        DataType::Bool => json!(false),
        DataType::Int8 => json!(-127),
        DataType::Uint8 => json!(255),
        DataType::Int16 => json!(-32767),
        DataType::Uint16 => json!(65535),
        DataType::Int32 => json!(-2_147_483_647),
        DataType::Uint32 => json!(4_294_967_295u64),
        DataType::Int64 => json!(-9_223_372_036_854_775_806i64),
        DataType::Uint64 => json!(18_446_744_073_709_551_614u64),
        DataType::Float32 => json!(f64::from(9.969_21e36_f32)),
        DataType::Float64 => json!(9.969_209_968_386_869e36),
        DataType::Char => json!(0),
        DataType::String => json!(""),
    }
}

/// The codec that turns `dtype` values into bytes: `bytes` with `big_endian` order (no order
/// for 1-byte types), `vlen-utf8` for strings (the layout of their decoded chunks).
pub(crate) fn bytes_codec(dtype: DataType, big_endian: bool) -> Value {
    if dtype.is_variable_length() {
        return json!({"name": "vlen-utf8", "configuration": {}});
    }
    if dtype.size() == 1 {
        return json!({"name": "bytes"});
    }
    json!({"name": "bytes", "configuration": {"endian": if big_endian { "big" } else { "little" }}})
}
