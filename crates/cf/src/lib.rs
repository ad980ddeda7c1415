//! The CF conventions in one place, for every plugin that reads values: which coordinate
//! plays which role and what grid a variable lies on ([`grid`]), longitudes in −180–180
//! ([`longitude`]), masked and unpacked values exactly as xarray decodes them ([`values`]),
//! CF time and its labels ([`time`]), selection by label or position ([`select`]), groups
//! and resampling bins as xarray forms them ([`group`]) and its reductions ([`reduce`]).
//!
//! Everything here works on the dataset model of the SDK (`cloudify_sdk::meta`) and on
//! values already read; [`read`] reads them through the host, region by region.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod grid;
pub mod group;
pub mod longitude;
pub mod read;
pub mod reduce;
pub mod select;
pub mod time;
pub mod values;
pub mod weights;

use cloudify_sdk::meta::VariableMeta;
use serde_json::Value;

pub use grid::{grid_of, role_of, Grid, Healpix, Role};
pub use select::{Selection, Selector};
pub use values::Decoding;

/// What can go wrong interpreting a dataset by CF.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A selection that cannot be parsed or applied; the message names the part.
    #[error("{0}")]
    Selection(String),
    /// Time that cannot be decoded or a label that names no date.
    #[error("{0}")]
    Time(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A text attribute of `var`.
pub fn text<'a>(var: &'a VariableMeta, name: &str) -> Option<&'a str> {
    var.attributes.get(name).and_then(Value::as_str)
}

/// A number attribute: a JSON number, a one-element list, or the texts `NaN`/`Infinity`
/// NetCDF fill values cross as.
pub fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::Array(items) if items.len() == 1 => number(&items[0]),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// Every number of an attribute (`missing_value` and `valid_range` may be lists).
pub fn numbers(value: &Value) -> Vec<f64> {
    match value {
        Value::Array(items) => items.iter().filter_map(number).collect(),
        other => number(other).into_iter().collect(),
    }
}
