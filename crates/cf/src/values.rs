//! Values as numbers, decoded the way xarray's CF decoding does: `_Unsigned` first, then
//! `_FillValue` and `missing_value` masked (to NaN), then `scale_factor` and `add_offset`.
//! `valid_min`/`valid_max`/`valid_range` are read but, as in xarray, applied only on request
//! ([`Decoding::masking_valid_range`]).

use cloudify_sdk::meta::{DataType, VariableMeta};

use crate::{number, numbers, text};

/// Whether `dtype` is an integer type.
pub fn is_integer(dtype: DataType) -> bool {
    matches!(
        dtype,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Uint8
            | DataType::Uint16
            | DataType::Uint32
            | DataType::Uint64
    )
}

/// Little-endian values of `dtype` (what the host's region reads answer) as numbers; text
/// types give none.
pub fn from_le_bytes(bytes: &[u8], dtype: DataType) -> Vec<f64> {
    macro_rules! each {
        ($t:ty) => {
            bytes
                .chunks_exact(size_of::<$t>())
                .map(|b| <$t>::from_le_bytes(b.try_into().unwrap_or_default()) as f64)
                .collect()
        };
    }
    match dtype {
        DataType::Bool | DataType::Uint8 => bytes.iter().map(|&b| f64::from(b)).collect(),
        DataType::Int8 => bytes.iter().map(|&b| f64::from(b as i8)).collect(),
        DataType::Int16 => each!(i16),
        DataType::Int32 => each!(i32),
        DataType::Int64 => each!(i64),
        DataType::Uint16 => each!(u16),
        DataType::Uint32 => each!(u32),
        DataType::Uint64 => each!(u64),
        DataType::Float32 => each!(f32),
        DataType::Float64 => each!(f64),
        DataType::Char | DataType::String => Vec::new(),
    }
}

/// How one variable's stored numbers become its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoding {
    /// `_Unsigned = "true"` on a signed integer type: the width to add to negative values.
    unsigned_wrap: Option<f64>,
    /// `_FillValue` and `missing_value`, in stored units.
    missing: Vec<f64>,
    /// `valid_min`/`valid_max` (or `valid_range`), in stored units, when applied.
    valid: Option<(f64, f64)>,
    /// Declared valid range, applied only when asked.
    declared_valid: Option<(f64, f64)>,
    scale: f64,
    offset: f64,
}

impl Decoding {
    /// The decoding of `var` from its attributes and fill value.
    pub fn of(var: &VariableMeta) -> Self {
        let signed_width = match var.dtype {
            DataType::Int8 => Some(256.0),
            DataType::Int16 => Some(65_536.0),
            DataType::Int32 => Some(4_294_967_296.0),
            DataType::Int64 => Some(18_446_744_073_709_551_616.0),
            _ => None,
        };
        let unsigned = text(var, "_Unsigned").is_some_and(|u| u.eq_ignore_ascii_case("true"));
        let unsigned_wrap = signed_width.filter(|_| unsigned);
        let wrap = |v: f64| match unsigned_wrap {
            Some(width) if v < 0.0 => v + width,
            _ => v,
        };
        let mut missing: Vec<f64> = numbers(&var.fill_value);
        if let Some(value) = var.attributes.get("_FillValue") {
            missing.extend(numbers(value));
        }
        if let Some(value) = var.attributes.get("missing_value") {
            missing.extend(numbers(value));
        }
        let missing = missing.into_iter().map(wrap).collect();
        let get = |name: &str| var.attributes.get(name).and_then(number);
        let range = var.attributes.get("valid_range").map(numbers).filter(|r| r.len() == 2).map(|r| (r[0], r[1]));
        let declared_valid = range.or_else(|| match (get("valid_min"), get("valid_max")) {
            (None, None) => None,
            (min, max) => Some((min.unwrap_or(f64::NEG_INFINITY), max.unwrap_or(f64::INFINITY))),
        });
        Self {
            unsigned_wrap,
            missing,
            valid: None,
            declared_valid,
            scale: get("scale_factor").unwrap_or(1.0),
            offset: get("add_offset").unwrap_or(0.0),
        }
    }

    /// The same decoding, also masking stored values outside `valid_min`/`valid_max`/
    /// `valid_range` (netCDF4-python's default; xarray's is not to).
    pub fn masking_valid_range(mut self) -> Self {
        self.valid = self.declared_valid;
        self
    }

    /// Whether values are unpacked (`scale_factor` or `add_offset` other than 1 and 0).
    pub fn is_packed(&self) -> bool {
        self.scale != 1.0 || self.offset != 0.0
    }

    /// One stored number decoded: NaN when masked.
    pub fn value(&self, stored: f64) -> f64 {
        let stored = match self.unsigned_wrap {
            Some(width) if stored < 0.0 => stored + width,
            _ => stored,
        };
        let outside = self.valid.is_some_and(|(min, max)| stored < min || stored > max);
        if stored.is_nan() || outside || self.missing.contains(&stored) {
            return f64::NAN;
        }
        stored * self.scale + self.offset
    }

    /// Stored numbers decoded in place.
    pub fn apply(&self, values: &mut [f64]) {
        values.iter_mut().for_each(|v| *v = self.value(*v));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn var(dtype: &str, attributes: serde_json::Value, fill: serde_json::Value) -> VariableMeta {
        serde_json::from_value(json!({"dtype": dtype, "dimensions": ["x"], "shape": [4], "chunks": [4],
            "attributes": attributes, "fill_value": fill}))
        .unwrap()
    }

    #[test]
    fn masked_then_unpacked_as_xarray_does() {
        let packed =
            var("int16", json!({"scale_factor": 0.5, "add_offset": 10.0, "missing_value": [-2, -3]}), json!(-1));
        let decoding = Decoding::of(&packed);
        let mut values = vec![-1.0, -2.0, -3.0, 4.0];
        decoding.apply(&mut values);
        assert!(values[..3].iter().all(|v| v.is_nan()));
        assert_eq!(values[3], 12.0);
        assert!(decoding.is_packed());

        // _Unsigned: -1 stored in a byte is 255, and the fill value too.
        let unsigned = var("int8", json!({"_Unsigned": "true"}), json!(-1));
        let decoding = Decoding::of(&unsigned);
        assert!(decoding.value(-1.0).is_nan());
        assert_eq!(decoding.value(-2.0), 254.0);

        // valid_range: declared, applied only when asked.
        let ranged = var("float32", json!({"valid_range": [0.0, 100.0]}), json!("NaN"));
        assert_eq!(Decoding::of(&ranged).value(150.0), 150.0);
        assert!(Decoding::of(&ranged).masking_valid_range().value(150.0).is_nan());
        assert!(Decoding::of(&ranged).value(f64::NAN).is_nan());
        let above = var("float32", json!({"valid_min": 0.0}), json!(null));
        assert!(Decoding::of(&above).masking_valid_range().value(-1.0).is_nan());
    }

    #[test]
    fn little_endian_values() {
        assert_eq!(from_le_bytes(&[1, 0, 255, 255], DataType::Int16), vec![1.0, -1.0]);
        assert_eq!(from_le_bytes(&2.5f32.to_le_bytes(), DataType::Float32), vec![2.5]);
        assert!(from_le_bytes(b"ab", DataType::Char).is_empty());
    }
}
