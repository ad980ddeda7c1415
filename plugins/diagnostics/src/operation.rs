//! The operation a request names, read by a fixed grammar (nothing from the URL is ever
//! evaluated): `groupby/{var}/{coord}/{action}` with `coord` a 1-D coordinate or
//! `{time coordinate}.{month|season|year|dayofyear|hour}`, `resample/{var}/{freq}/{action}`
//! with pandas' frequencies, `fldmean/{var}`; the same as a derived dataset's id
//! (`{source}~groupby~{var}~{coord}~{action}`, see [`Derivation`]).

use cloudify_cf::{
    group::{self, Frequency, Groups, Label, TimePart},
    reduce::Reduction,
    role_of,
    time::{rfc3339, TimeAxis},
    Grid, Role,
};
use cloudify_cftime::DateTime;
use cloudify_sdk::{
    meta::{DataType, DatasetMeta, VariableMeta},
    Error, Host,
};

/// Coordinates larger than this are not read.
const MAX_COORDINATE_BYTES: u64 = 256 << 20;

/// Separates a derived dataset's id from its source's and the operation's segments: `~` is
/// unreserved in URLs (never escaped) and no segment of the grammar may hold it.
pub(crate) const SEPARATOR: char = '~';

/// Derived datasets made from derived datasets, at most this deep.
const MAX_NESTING: usize = 3;

/// What a request or a derived dataset's id names: an operation on a variable of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Derivation {
    /// The dataset computed from.
    pub(crate) source: String,
    /// The variable reduced.
    pub(crate) var: String,
    /// The operation's own segments: `groupby`, `coord`, `action` / `resample`, `freq`,
    /// `action` / `fldmean`.
    pub(crate) segments: Vec<String>,
}

/// Path segments are names, actions, frequencies: nothing else gets near the computation.
pub(crate) fn plain(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= 256
        && segment.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Segments after the operation's name (the variable first).
fn arity(operation: &str) -> Option<usize> {
    match operation {
        "groupby" | "resample" => Some(3),
        "fldmean" => Some(1),
        _ => None,
    }
}

impl Derivation {
    /// The derivation `{operation}/{var}/...` (a route's segments after the dataset id) of
    /// dataset `source`.
    ///
    /// # Errors
    /// 400 naming the segment that is not a plain name, or an unknown operation.
    pub(crate) fn new(source: &str, operation: &str, rest: &[&str]) -> Result<Self, Error> {
        if arity(operation) != Some(rest.len()) {
            return Err(invalid(format!(
                "unknown operation '{operation}' with {} segments: groupby/VAR/COORD/ACTION, resample/VAR/FREQ/ACTION or fldmean/VAR",
                rest.len()
            )));
        }
        if let Some(bad) = rest.iter().find(|s| !plain(s)) {
            return Err(invalid(format!("'{bad}' is not a name: letters, digits, '.', '_' and '-' only")));
        }
        let mut segments = vec![operation.to_owned()];
        segments.extend(rest[1..].iter().map(|s| (*s).to_owned()));
        Ok(Self { source: source.to_owned(), var: rest[0].to_owned(), segments })
    }

    /// The derivation a derived dataset's id names, `None` for any other id (and for
    /// derivations nested deeper than [`MAX_NESTING`]).
    pub(crate) fn from_id(id: &str) -> Option<Self> {
        if id.len() > 1024 || id.matches(SEPARATOR).count() > 5 * MAX_NESTING {
            return None;
        }
        let derivation = Self::parse(id)?;
        let (mut depth, mut source) = (1, Self::parse(&derivation.source));
        while let Some(inner) = source {
            depth += 1;
            if depth > MAX_NESTING {
                return None;
            }
            source = Self::parse(&inner.source);
        }
        Some(derivation)
    }

    /// `id` read as a derivation, however deep.
    fn parse(id: &str) -> Option<Self> {
        let parts: Vec<&str> = id.split(SEPARATOR).collect();
        let at = (1..parts.len()).rev().find(|&i| arity(parts[i]) == Some(parts.len() - i - 1))?;
        let source = parts[..at].join(&SEPARATOR.to_string());
        if source.is_empty() {
            return None;
        }
        Self::new(&source, parts[at], &parts[at + 1..]).ok()
    }

    /// The id of the dataset this derivation makes.
    pub(crate) fn id(&self) -> String {
        let mut id = self.source.clone();
        for segment in std::iter::once(&self.segments[0]).chain([&self.var]).chain(&self.segments[1..]) {
            id.push(SEPARATOR);
            id.push_str(segment);
        }
        id
    }

    /// The route of this derivation under `/datasets/{source}/`.
    pub(crate) fn path(&self) -> String {
        let mut parts = vec![self.segments[0].as_str(), self.var.as_str()];
        parts.extend(self.segments[1..].iter().map(String::as_str));
        parts.join("/")
    }

    /// What the derivation computes, on `meta` (its source's metadata).
    ///
    /// # Errors
    /// 400 for what the grammar or the dataset refuses; what reading coordinates fails with.
    pub(crate) async fn operation(&self, host: &Host, meta: &DatasetMeta) -> Result<Operation, Error> {
        match self.segments.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["groupby", coord, action] => groupby(host, meta, &self.var, coord, action).await,
            ["resample", freq, action] => resample(host, meta, &self.var, freq, action).await,
            _ => fldmean(host, meta, &self.var).await,
        }
    }
}

/// The labels of the groups of a grouped operation.
#[derive(Debug, Clone)]
pub(crate) enum Labels {
    /// Numbers: months, years, a coordinate's values (`integer` when they are counts of
    /// something: months, hours, ...).
    Numbers { values: Vec<f64>, integer: bool },
    /// Season names.
    Texts(Vec<&'static str>),
    /// The first instants of resampling bins, in `calendar`.
    Dates { dates: Vec<DateTime>, calendar: Option<String> },
}

impl Labels {
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Numbers { values, .. } => values.len(),
            Self::Texts(texts) => texts.len(),
            Self::Dates { dates, .. } => dates.len(),
        }
    }

    /// As JSON: numbers, names, RFC 3339 dates.
    pub(crate) fn to_json(&self) -> Vec<serde_json::Value> {
        match self {
            Self::Numbers { values, integer: true } => values.iter().map(|&v| serde_json::json!(v as i64)).collect(),
            Self::Numbers { values, .. } => values.iter().map(|&v| serde_json::json!(v)).collect(),
            Self::Texts(texts) => texts.iter().map(|&t| serde_json::json!(t)).collect(),
            Self::Dates { dates, .. } => dates.iter().map(|d| serde_json::json!(rfc3339(d))).collect(),
        }
    }
}

/// What is computed.
pub(crate) enum Operation {
    /// Positions along `dim` reduced within each group; the result's `dim` is `name`, the
    /// group labels come from coordinate `of_coord` (its attributes describe them).
    Grouped {
        dim: String,
        name: String,
        labels: Labels,
        of_coord: String,
        of: Vec<Option<usize>>,
        reduction: Reduction,
        method: String,
    },
    /// The area mean over the grid's dimensions, with the cells' weights (row-major over
    /// [`Grid::dimensions`]).
    FieldMean { grid: Grid, weights: Vec<f64> },
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

fn labels(groups: &Groups<Label>, integer: bool) -> Labels {
    let texts: Vec<&'static str> =
        groups.labels.iter().filter_map(|l| if let Label::Text(t) = l { Some(*t) } else { None }).collect();
    if !texts.is_empty() {
        return Labels::Texts(texts);
    }
    let values = groups.labels.iter().map(|l| if let Label::Number(n) = l { *n } else { f64::NAN }).collect();
    Labels::Numbers { values, integer }
}

/// `groupby/{var}/{coord}/{action}`.
async fn groupby(host: &Host, meta: &DatasetMeta, var: &str, coord: &str, action: &str) -> Result<Operation, Error> {
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
            (part.to_owned(), labels(&groups, true), groups.of)
        }
        None => {
            let values = cloudify_cf::read::all(host, &meta.id, base, coordinate, MAX_COORDINATE_BYTES).await?;
            let groups = group::by_values(&values);
            (base.to_owned(), labels(&groups, false), groups.of)
        }
    };
    let method = format!("{dim}: {action} (grouped by {coord})");
    Ok(Operation::Grouped { dim, name, labels, of_coord: base.to_owned(), of, reduction, method })
}

/// `resample/{var}/{freq}/{action}`, along the variable's time dimension.
async fn resample(host: &Host, meta: &DatasetMeta, var: &str, freq: &str, action: &str) -> Result<Operation, Error> {
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
    let labels = Labels::Dates { dates: bins.labels, calendar: axis.calendar };
    let method = format!("{dim}: {action} (resampled to {freq})");
    Ok(Operation::Grouped {
        dim: dim.clone(),
        name: dim.clone(),
        labels,
        of_coord: dim,
        of: bins.of,
        reduction,
        method,
    })
}

/// `fldmean/{var}`.
async fn fldmean(host: &Host, meta: &DatasetMeta, var: &str) -> Result<Operation, Error> {
    variable(meta, var)?;
    let grid = cloudify_cf::grid_of(meta, var)
        .ok_or_else(|| invalid(format!("'{var}' has no latitude/longitude grid to average over")))?;
    let positions: Vec<Vec<usize>> = grid
        .dimensions(meta)
        .iter()
        .map(|d| (0..meta.dimensions.get(d).copied().unwrap_or(0) as usize).collect())
        .collect();
    let weights = cloudify_cf::weights::area(host, meta, var, &grid, &positions).await?;
    Ok(Operation::FieldMean { grid, weights })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_parse_from_the_right_and_round_trip() {
        let d = Derivation::from_id("cmip~6~groupby~tas~time.month~mean").unwrap();
        assert_eq!((d.source.as_str(), d.var.as_str()), ("cmip~6", "tas"));
        assert_eq!(d.path(), "groupby/tas/time.month/mean");
        assert_eq!(d.id(), "cmip~6~groupby~tas~time.month~mean");
        let nested = Derivation::from_id("a~groupby~tas~time.month~mean~fldmean~tas").unwrap();
        assert_eq!((nested.source.as_str(), nested.path().as_str()), ("a~groupby~tas~time.month~mean", "fldmean/tas"));
        assert_eq!(Derivation::from_id("a~resample~pr~QS-DEC~max").unwrap().path(), "resample/pr/QS-DEC/max");
    }

    #[test]
    fn hostile_ids_are_no_derivations() {
        let deep = format!("a{}", "~fldmean~tas".repeat(MAX_NESTING + 2));
        let long = format!("{}~fldmean~tas", "x".repeat(2000));
        for id in [
            "tas",
            "~fldmean~tas",
            "a~fldmean",
            "a~fldmean~tas~extra",
            "a~groupby~tas~time.month",
            "a~groupby~tas~time.month).__class__~mean",
            "a~groupby~tas~__import__('os')~mean",
            "a~eval~tas",
            "a~fldmean~",
            deep.as_str(),
            long.as_str(),
        ] {
            assert!(Derivation::from_id(id).is_none(), "{id}");
        }
        assert!(plain("time.month") && plain("QS-DEC") && !plain("a b") && !plain("x/y") && !plain(""));
    }
}
