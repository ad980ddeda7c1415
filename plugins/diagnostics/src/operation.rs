//! The operation a request names, read by a fixed grammar (nothing from the URL is ever
//! evaluated): `groupby/{var}/{coord}/{action}` with `coord` a 1-D coordinate or
//! `{time coordinate}.{month|season|year|dayofyear|hour}`, `resample/{var}/{freq}/{action}`
//! with pandas' frequencies, `fldmean/{var}`.

use cloudify_cf::{
    group::{self, Frequency, Groups, Label, TimePart},
    reduce::Reduction,
    role_of,
    time::{rfc3339, TimeAxis},
    Grid, Role,
};
use cloudify_sdk::{
    meta::{DataType, DatasetMeta, VariableMeta},
    Error, Host,
};

/// Coordinates larger than this are not read.
const MAX_COORDINATE_BYTES: u64 = 256 << 20;

/// What is computed.
pub(crate) enum Operation {
    /// Positions along `dim` reduced within each group; the result's `dim` is `name`.
    Grouped {
        dim: String,
        name: String,
        labels: Vec<serde_json::Value>,
        of: Vec<Option<usize>>,
        reduction: Reduction,
        method: String,
    },
    /// The area mean over the grid's dimensions.
    FieldMean { grid: Grid },
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(message.into())
}

/// The variable `name` of `meta`, refusing text and unknown names (400 listing the variables).
pub(crate) fn variable<'a>(meta: &'a DatasetMeta, name: &str) -> Result<&'a VariableMeta, Error> {
    let var = meta.variables.get(name).ok_or_else(|| {
        let names: Vec<&str> = meta.variables.keys().map(String::as_str).collect();
        invalid(format!("no variable '{name}' in dataset '{}': one of {}", meta.id, names.join(", ")))
    })?;
    if matches!(var.dtype, DataType::Char | DataType::String) {
        return Err(invalid(format!("'{name}' holds text: only numbers can be reduced")));
    }
    Ok(var)
}

fn reduction(action: &str) -> Result<Reduction, Error> {
    Reduction::named(action)
        .ok_or_else(|| invalid(format!("unknown action '{action}': one of {}", Reduction::NAMES.join(", "))))
}

/// The time axis of coordinate `name` (a 1-D variable over its own dimension).
async fn time_axis(host: &Host, meta: &DatasetMeta, name: &str) -> Result<TimeAxis, Error> {
    let coord = &meta.variables[name];
    let values = cloudify_cf::read::all(host, &meta.id, name, coord, MAX_COORDINATE_BYTES).await?;
    TimeAxis::decode(coord, &values).map_err(|e| invalid(e.to_string()))
}

/// The 1-D coordinate of dimension `dim`.
fn dimension_coordinate<'a>(meta: &'a DatasetMeta, dim: &str) -> Option<&'a VariableMeta> {
    meta.variables.get(dim).filter(|v| v.dimensions.len() == 1 && v.dimensions[0] == dim)
}

fn labels(groups: &Groups<Label>) -> Vec<serde_json::Value> {
    groups
        .labels
        .iter()
        .map(|l| match l {
            Label::Number(n) => serde_json::json!(n),
            Label::Text(t) => serde_json::json!(t),
        })
        .collect()
}

/// `groupby/{var}/{coord}/{action}`.
pub(crate) async fn groupby(
    host: &Host,
    meta: &DatasetMeta,
    var: &str,
    coord: &str,
    action: &str,
) -> Result<Operation, Error> {
    let variable = variable(meta, var)?;
    let reduction = reduction(action)?;
    let (base, part) = match coord.split_once('.') {
        Some((base, part)) => (base, Some(part)),
        None => (coord, None),
    };
    let grouping =
        meta.variables.get(base).filter(|c| c.dimensions.len() == 1 && variable.dimensions.contains(&c.dimensions[0]));
    let Some(coordinate) = grouping else {
        let names: Vec<String> = variable
            .dimensions
            .iter()
            .filter(|d| dimension_coordinate(meta, d).is_some())
            .flat_map(|d| {
                let time = dimension_coordinate(meta, d).is_some_and(|c| role_of(d, c) == Role::Time);
                let parts: Vec<String> =
                    if time { TimePart::NAMES.iter().map(|p| format!("{d}.{p}")).collect() } else { Vec::new() };
                std::iter::once(d.clone()).chain(parts)
            })
            .collect();
        return Err(invalid(format!("'{coord}' is no coordinate of '{var}' to group by: one of {}", names.join(", "))));
    };
    let dim = coordinate.dimensions[0].clone();
    let (name, labels, of) = match part {
        Some(part) => {
            let time_part = TimePart::named(part).ok_or_else(|| {
                invalid(format!("unknown part '{part}' of '{base}': one of {}", TimePart::NAMES.join(", ")))
            })?;
            if role_of(base, coordinate) != Role::Time {
                return Err(invalid(format!("'{base}' is no time coordinate: '{coord}' needs CF time units")));
            }
            let axis = time_axis(host, meta, base).await?;
            let groups = group::by_time(&axis, time_part).map_err(|e| invalid(e.to_string()))?;
            (part.to_owned(), labels(&groups), groups.of)
        }
        None => {
            let values = cloudify_cf::read::all(host, &meta.id, base, coordinate, MAX_COORDINATE_BYTES).await?;
            let groups = group::by_values(&values);
            (base.to_owned(), labels(&groups), groups.of)
        }
    };
    let method = format!("{dim}: {action} (grouped by {coord})");
    Ok(Operation::Grouped { dim, name, labels, of, reduction, method })
}

/// `resample/{var}/{freq}/{action}`, along the variable's time dimension.
pub(crate) async fn resample(
    host: &Host,
    meta: &DatasetMeta,
    var: &str,
    freq: &str,
    action: &str,
) -> Result<Operation, Error> {
    let variable = variable(meta, var)?;
    let reduction = reduction(action)?;
    let frequency = Frequency::parse(freq).map_err(|e| invalid(e.to_string()))?;
    let dim = variable
        .dimensions
        .iter()
        .find(|d| dimension_coordinate(meta, d).is_some_and(|c| role_of(d, c) == Role::Time))
        .ok_or_else(|| invalid(format!("'{var}' has no time dimension to resample")))?
        .clone();
    let axis = time_axis(host, meta, &dim).await?;
    let bins = group::resample(&axis, frequency).map_err(|e| invalid(e.to_string()))?;
    let labels = bins.labels.iter().map(|d| serde_json::json!(rfc3339(d))).collect();
    let method = format!("{dim}: {action} (resampled to {freq})");
    Ok(Operation::Grouped { dim: dim.clone(), name: dim, labels, of: bins.of, reduction, method })
}

/// `fldmean/{var}`.
pub(crate) fn fldmean(meta: &DatasetMeta, var: &str) -> Result<Operation, Error> {
    variable(meta, var)?;
    let grid = cloudify_cf::grid_of(meta, var)
        .ok_or_else(|| invalid(format!("'{var}' has no latitude/longitude grid to average over")))?;
    Ok(Operation::FieldMean { grid })
}
