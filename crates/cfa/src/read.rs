//! What an aggregation file says: its aggregation variables and their fragments.

use std::path::Path;

use cloudify_dataset::{
    hyperslab::{ravel, unravel},
    read_region, strings, DataType, DatasetMeta, Error, Result, Source, VariableMeta,
};
use serde_json::Value;

/// The most bytes read of one variable describing fragments (`map`, `uris`, ...).
const MAX_DESCRIPTOR_BYTES: u64 = 64 << 20;

/// Where one fragment's values come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Fragment {
    /// Variable `variable` (a name or a `/group/name` path) of the file at `location` (a
    /// local path or a URL, resolved against the aggregation file).
    File {
        /// Local path or URL.
        location: String,
        /// The variable's name in that file.
        variable: String,
    },
    /// One value for the whole fragment (`unique_values`).
    Value(f64),
    /// No data: the aggregation variable's missing value.
    Missing,
}

/// One aggregation variable as its file describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregation {
    /// The variable's name.
    pub name: String,
    /// The aggregated variable: the aggregation variable's type and attributes (without the
    /// aggregation ones) on `aggregated_dimensions`. Its chunks are the whole shape until
    /// [`crate::assemble`] sets them.
    pub var: VariableMeta,
    /// Per dimension, the fragments' lengths along it.
    pub sizes: Vec<Vec<u64>>,
    /// The fragments, in C order over the array of fragments.
    pub fragments: Vec<Fragment>,
}

impl Aggregation {
    /// The region (start, shape) of the fragment at position `flat` of the C-order walk.
    pub fn region(&self, flat: usize) -> (Vec<u64>, Vec<u64>) {
        let counts: Vec<u64> = self.sizes.iter().map(|s| s.len() as u64).collect();
        let at = unravel(flat as u64, &counts);
        let start = at.iter().zip(&self.sizes).map(|(&p, sizes)| sizes[..p as usize].iter().sum()).collect();
        let shape = at.iter().zip(&self.sizes).map(|(&p, sizes)| sizes[p as usize]).collect();
        (start, shape)
    }
}

/// Everything an aggregation file describes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Description {
    /// The aggregation variables that can be read.
    pub aggregations: Vec<Aggregation>,
    /// Aggregation variables that cannot, with the reason.
    pub refused: Vec<(String, String)>,
    /// The variables holding fragment descriptions (`map`, `uris`, ...): not data.
    pub features: Vec<String>,
}

/// Whether `meta` has an aggregation variable (one with `aggregated_dimensions`).
pub fn is_aggregation(meta: &DatasetMeta) -> bool {
    meta.variables.values().any(|v| v.attributes.contains_key("aggregated_dimensions"))
}

/// The fragment at `uri` named in the aggregation file at `base` (a local path or a URL):
/// absolute URIs and paths as they are (`file://` removed), relative ones against the
/// aggregation file's folder, as CF-1.13 says.
pub fn resolve(uri: &str, base: &str) -> String {
    if let Some(path) = uri.strip_prefix("file://") {
        return path.to_owned();
    }
    if uri.contains("://") || uri.starts_with('/') {
        return uri.to_owned();
    }
    if base.contains("://") {
        if let Ok(joined) = url::Url::parse(base).and_then(|b| b.join(uri)) {
            return joined.to_string();
        }
    }
    let folder = Path::new(base.strip_prefix("file://").unwrap_or(base)).parent().unwrap_or(Path::new(""));
    folder.join(uri).to_string_lossy().into_owned()
}

/// Reads the aggregation variables of the aggregation file served by `source`, located at
/// `location` (relative fragment URIs are resolved against it).
///
/// # Errors
/// A read of the file failing; a variable that describes its fragments wrongly is refused
/// in [`Description::refused`] instead.
pub async fn describe(source: &dyn Source, location: &str) -> Result<Description> {
    let meta = source.metadata()?;
    let mut description = Description::default();
    for (name, var) in &meta.variables {
        if !var.attributes.contains_key("aggregated_dimensions") {
            continue;
        }
        let features = var.attributes.get("aggregated_data").and_then(Value::as_str).map(parse_features);
        if let Some(Ok(features)) = &features {
            for (_, variable) in features {
                if !description.features.contains(variable) {
                    description.features.push(variable.clone());
                }
            }
        }
        let described = match features {
            None => Err("no aggregated_data attribute".to_owned()),
            Some(Err(reason)) => Err(reason),
            Some(Ok(features)) => aggregation(source, &meta, name, var, &features, location).await,
        };
        match described {
            Ok(aggregation) => description.aggregations.push(aggregation),
            Err(reason) => description.refused.push((name.clone(), reason)),
        }
    }
    Ok(description)
}

/// `aggregated_data`'s `feature: variable` pairs (also written `feature:variable`).
fn parse_features(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut key: Option<&str> = None;
    for token in text.split_whitespace() {
        match (key.take(), token.split_once(':')) {
            (None, Some((feature, ""))) => key = Some(feature),
            (None, Some((feature, variable))) => pairs.push((feature.to_owned(), variable.to_owned())),
            (Some(feature), None) => pairs.push((feature.to_owned(), token.to_owned())),
            _ => return Err(format!("aggregated_data {text:?} is not a list of 'feature: variable' pairs")),
        }
    }
    if key.is_some() || pairs.is_empty() {
        return Err(format!("aggregated_data {text:?} is not a list of 'feature: variable' pairs"));
    }
    Ok(pairs)
}

/// The variables naming the fragments' sizes, files, variables and constants.
#[derive(Debug)]
struct Features<'a> {
    map: &'a str,
    uris: Option<&'a str>,
    identifiers: Option<&'a str>,
    unique_values: Option<&'a str>,
}

impl<'a> Features<'a> {
    /// CF-1.13's keywords (`map` with `uris` + `identifiers` or with `unique_values`), or
    /// CFA-0.6's (`location`, `file`, `address`, `format`; case does not matter there).
    fn of(pairs: &'a [(String, String)]) -> Result<Self, String> {
        let exact = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let any_case = |key: &str| pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str());
        if let Some(map) = exact("map") {
            let features = Self {
                map,
                uris: exact("uris"),
                identifiers: exact("identifiers"),
                unique_values: exact("unique_values"),
            };
            return match (&features.uris, &features.identifiers, &features.unique_values) {
                (Some(_), Some(_), None) | (None, None, Some(_)) => Ok(features),
                _ => Err("CF-1.13 needs 'map' with 'uris' and 'identifiers', or 'map' with 'unique_values'".to_owned()),
            };
        }
        if let Some(location) = any_case("location").filter(|_| any_case("shape").is_none()) {
            if any_case("file").is_none() {
                return Err("CFA-0.6 fragments inside the aggregation file itself (no 'file') are not read".to_owned());
            }
            return Ok(Self {
                map: location,
                uris: any_case("file"),
                identifiers: any_case("address"),
                unique_values: None,
            });
        }
        Err("neither CF-1.13 ('map', 'uris', 'identifiers') nor CFA-0.6 ('location', 'file', 'address') keywords; the 2024 draft's 'shape' form is not read".to_owned())
    }
}

async fn aggregation(
    source: &dyn Source,
    meta: &DatasetMeta,
    name: &str,
    var: &VariableMeta,
    pairs: &[(String, String)],
    location: &str,
) -> Result<Aggregation, String> {
    let features = Features::of(pairs)?;
    let dims: Vec<String> = var.attributes["aggregated_dimensions"]
        .as_str()
        .ok_or("aggregated_dimensions is not text")?
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let shape = dims
        .iter()
        .map(|d| {
            meta.dimensions.get(d).copied().ok_or_else(|| format!("aggregated dimension '{d}' is not in the file"))
        })
        .collect::<Result<Vec<u64>, String>>()?;
    let sizes = fragment_sizes(source, meta, features.map, &dims, &shape).await?;
    let count = sizes.iter().try_fold(1usize, |n, s| n.checked_mul(s.len())).ok_or("too many fragments")?;
    let fragments = match (features.uris, features.unique_values) {
        (Some(uris), _) => {
            let files = fragment_uris(source, meta, uris, count).await?;
            let identifiers = match features.identifiers {
                Some(ids) => strings_of(source, meta, ids).await?,
                None => vec![name.to_owned()],
            };
            if identifiers.len() != 1 && identifiers.len() != count {
                return Err(format!("{} identifiers for {count} fragments", identifiers.len()));
            }
            let substitutions = substitutions(meta, uris);
            files
                .into_iter()
                .enumerate()
                .map(|(i, uri)| match uri {
                    None => Fragment::Missing,
                    Some(uri) => Fragment::File {
                        location: resolve(&substitute(&uri, &substitutions), location),
                        variable: identifiers[if identifiers.len() == 1 { 0 } else { i }].clone(),
                    },
                })
                .collect()
        }
        (None, Some(values)) => {
            let values = numbers(source, meta, values).await?;
            if values.len() != count {
                return Err(format!("{} unique_values for {count} fragments", values.len()));
            }
            values.into_iter().map(|v| v.map_or(Fragment::Missing, Fragment::Value)).collect()
        }
        (None, None) => return Err("no fragments".to_owned()),
    };
    let mut aggregated = var.clone();
    aggregated.attributes.remove("aggregated_dimensions");
    aggregated.attributes.remove("aggregated_data");
    aggregated.dimensions = dims;
    aggregated.chunks.clone_from(&shape);
    aggregated.shape = shape;
    Ok(Aggregation { name: name.to_owned(), var: aggregated, sizes, fragments })
}

/// The fragments' lengths along each dimension: the rows of `map` (CFA-0.6: `location`),
/// padded with missing values, each summing to its dimension's length.
async fn fragment_sizes(
    source: &dyn Source,
    meta: &DatasetMeta,
    map: &str,
    dims: &[String],
    shape: &[u64],
) -> Result<Vec<Vec<u64>>, String> {
    let values = numbers(source, meta, map).await?;
    let map_shape = &meta.variables[map].shape;
    if dims.is_empty() {
        return Ok(Vec::new());
    }
    let columns = match map_shape.as_slice() {
        [rows, columns] if *rows as usize == dims.len() => *columns as usize,
        [columns] if dims.len() == 1 => *columns as usize,
        other => return Err(format!("'{map}' has shape {other:?}; expected ({}, fragments)", dims.len())),
    };
    let mut sizes = Vec::with_capacity(dims.len());
    for (row, (dim, &length)) in dims.iter().zip(shape).enumerate() {
        let cells = &values[row * columns..(row + 1) * columns];
        let valid: Vec<f64> = cells.iter().map_while(|v| *v).collect();
        if cells[valid.len()..].iter().any(Option::is_some) {
            return Err(format!("'{map}' row {row} has a missing value between fragment sizes"));
        }
        if valid.iter().any(|v| v.fract() != 0.0 || *v < 1.0 || *v > length as f64) {
            return Err(format!("'{map}' row {row} holds a size that is not a count within '{dim}'"));
        }
        let row_sizes: Vec<u64> = valid.iter().map(|v| *v as u64).collect();
        if row_sizes.iter().sum::<u64>() != length {
            return Err(format!("'{map}' row {row} sums to {}, '{dim}' has {length}", row_sizes.iter().sum::<u64>()));
        }
        sizes.push(row_sizes);
    }
    Ok(sizes)
}

/// Each fragment's URI, `None` where it has none. CFA-0.6 allows a trailing dimension of
/// alternative URIs: the first one given is taken.
async fn fragment_uris(
    source: &dyn Source,
    meta: &DatasetMeta,
    name: &str,
    count: usize,
) -> Result<Vec<Option<String>>, String> {
    let all = strings_of(source, meta, name).await?;
    if count == 0 || all.len() % count != 0 {
        return Err(format!("'{name}' holds {} URIs for {count} fragments", all.len()));
    }
    let per = all.len() / count;
    Ok(all.chunks(per).map(|alternatives| alternatives.iter().find(|u| !u.is_empty()).cloned()).collect())
}

/// `${name}: value` pairs of the URI variable's `substitutions` attribute (CFA-0.6).
fn substitutions(meta: &DatasetMeta, name: &str) -> Vec<(String, String)> {
    let Some(text) = meta.variables[name].attributes.get("substitutions").and_then(Value::as_str) else {
        return Vec::new();
    };
    let mut pairs = Vec::new();
    let mut key = None;
    for token in text.split_whitespace() {
        match token.strip_suffix(':').filter(|k| k.starts_with("${") && k.ends_with('}')) {
            Some(name) => key = Some(name),
            None => pairs.extend(key.take().map(|k| (k.to_owned(), token.to_owned()))),
        }
    }
    pairs
}

fn substitute(uri: &str, substitutions: &[(String, String)]) -> String {
    substitutions.iter().fold(uri.to_owned(), |uri, (key, value)| uri.replace(key.as_str(), value))
}

fn descriptor<'m>(meta: &'m DatasetMeta, name: &str) -> Result<&'m VariableMeta, String> {
    let var = meta
        .variables
        .get(name)
        .ok_or_else(|| format!("variable '{name}' named in aggregated_data is not in the file"))?;
    let count = var.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
    let bytes = count.and_then(|n| n.checked_mul(var.dtype.size().max(8) as u64));
    if bytes.is_none_or(|b| b > MAX_DESCRIPTOR_BYTES) {
        return Err(format!("'{name}' is over {MAX_DESCRIPTOR_BYTES} bytes"));
    }
    Ok(var)
}

/// The values of a numeric variable, `None` where missing (`_FillValue`, `missing_value`).
async fn numbers(source: &dyn Source, meta: &DatasetMeta, name: &str) -> Result<Vec<Option<f64>>, String> {
    let var = descriptor(meta, name)?;
    if matches!(var.dtype, DataType::Char | DataType::String) {
        return Err(format!("'{name}' holds text, not numbers"));
    }
    let zero = vec![0; var.shape.len()];
    let bytes = read_region(source, name, &zero, &var.shape, MAX_DESCRIPTOR_BYTES).await.map_err(|e| e.to_string())?;
    let mut missing = vec![cloudify_cf::number(&var.fill_value)];
    missing.extend(
        var.attributes.get("missing_value").map(cloudify_cf::numbers).unwrap_or_default().into_iter().map(Some),
    );
    let is_missing = |v: f64| missing.iter().flatten().any(|m| *m == v || (m.is_nan() && v.is_nan()));
    Ok(cloudify_cf::values::from_le_bytes(&bytes, var.dtype)
        .into_iter()
        .map(|v| (!is_missing(v)).then_some(v))
        .collect())
}

/// The strings of a text variable (variable-length strings, or characters along the last
/// dimension), in C order; missing ones empty.
async fn strings_of(source: &dyn Source, meta: &DatasetMeta, name: &str) -> Result<Vec<String>, String> {
    let var = descriptor(meta, name)?;
    let failed = |e: Error| format!("reading '{name}': {e}");
    match var.dtype {
        DataType::Char => {
            let zero = vec![0; var.shape.len()];
            let bytes = read_region(source, name, &zero, &var.shape, MAX_DESCRIPTOR_BYTES).await.map_err(failed)?;
            let width = var.shape.last().copied().unwrap_or(1).max(1) as usize;
            Ok(bytes.chunks(width).map(|row| text(row.split(|&b| b == 0).next().unwrap_or_default())).collect())
        }
        DataType::String => {
            let count = var.shape.iter().product::<u64>() as usize;
            let mut out = vec![String::new(); count];
            let grid = var.chunk_grid();
            for flat in 0..grid.iter().product::<u64>() {
                let index = unravel(flat, &grid);
                let chunk = source.read_chunk(name, &index).await.map_err(failed)?;
                let items = strings::decode(&chunk).map_err(|e| format!("reading '{name}': {e}"))?;
                for (i, item) in items.into_iter().enumerate() {
                    let local = unravel(i as u64, &var.chunks);
                    let at: Vec<u64> = local.iter().zip(&index).zip(&var.chunks).map(|((l, c), n)| c * n + l).collect();
                    if at.iter().zip(&var.shape).all(|(a, s)| a < s) {
                        out[ravel(&at, &var.shape) as usize] = text(item);
                    }
                }
            }
            Ok(out)
        }
        _ => Err(format!("'{name}' holds numbers, not text")),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_parse_in_both_spellings() {
        let pairs = parse_features("map: fragment_map uris:fragment_uris  identifiers: ids").unwrap();
        assert_eq!(
            pairs,
            [("map", "fragment_map"), ("uris", "fragment_uris"), ("identifiers", "ids")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(parse_features("map: ").is_err());
        assert!(parse_features("map fragment_map").is_err());
        assert!(parse_features("").is_err());
    }

    #[test]
    fn conventions_are_told_by_their_keywords() {
        let pairs = |text: &str| parse_features(text).unwrap();
        let cf = pairs("map: m uris: u identifiers: i");
        assert_eq!(Features::of(&cf).unwrap().uris, Some("u"));
        let constants = pairs("map: m unique_values: v");
        assert_eq!(Features::of(&constants).unwrap().unique_values, Some("v"));
        let old = pairs("Location: cfa_location File: cfa_file Address: cfa_address Format: cfa_format");
        let old = Features::of(&old).unwrap();
        assert_eq!((old.map, old.uris, old.identifiers), ("cfa_location", Some("cfa_file"), Some("cfa_address")));
        assert!(Features::of(&pairs("map: m uris: u")).unwrap_err().contains("identifiers"));
        assert!(Features::of(&pairs("location: l address: a")).unwrap_err().contains("inside the aggregation file"));
        assert!(Features::of(&pairs("shape: s location: l address: a")).unwrap_err().contains("draft"));
    }

    #[test]
    fn uris_resolve_against_the_aggregation_file() {
        assert_eq!(resolve("tas_2000.nc", "/data/agg/tas.nc"), "/data/agg/tas_2000.nc");
        assert_eq!(resolve("../raw/tas.nc", "/data/agg/tas.nc"), "/data/agg/../raw/tas.nc");
        assert_eq!(resolve("file:///data/x.nc", "/elsewhere/a.nc"), "/data/x.nc");
        assert_eq!(resolve("/data/x.nc", "/elsewhere/a.nc"), "/data/x.nc");
        assert_eq!(resolve("s3://bucket/x.nc", "/a.nc"), "s3://bucket/x.nc");
        assert_eq!(resolve("x/2000.nc", "https://host/cfa/tas.nc"), "https://host/cfa/x/2000.nc");
        assert_eq!(substitute("${base}/x.nc", &[("${base}".to_owned(), "/data".to_owned())]), "/data/x.nc");
    }
}
