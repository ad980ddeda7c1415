//! Results as datasets of their own: the dataset `{source}~groupby~{var}~{coord}~{action}`
//! (and `~resample~…`, `~fldmean~{var}`) holds the result variable, its group labels and the
//! source's coordinates that survive the reduction. Its metadata is planned once per source
//! version; each output chunk is computed on demand from the input chunks it needs.

use std::sync::Arc;

use cloudify_cf::reduce::Reduction;
use cloudify_sdk::{
    hyperslab,
    meta::{DataType, DatasetMeta, VariableMeta},
    Error, Host,
};
use cloudify_zarr_store::Described;
use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::{
    compute::{self, Window},
    operation::{Derivation, Labels, Operation},
};

/// Attributes that describe stored values, not the computed ones.
const STORAGE_ATTRIBUTES: [&str; 9] = [
    "_FillValue",
    "missing_value",
    "scale_factor",
    "add_offset",
    "valid_min",
    "valid_max",
    "valid_range",
    "_Unsigned",
    "_Encoding",
];

/// A derived dataset, planned: what is computed from which source version, and how it is
/// laid out.
pub(crate) struct Plan {
    pub(crate) derivation: Derivation,
    pub(crate) source: Arc<Described>,
    pub(crate) operation: Operation,
    /// The derived dataset's metadata.
    pub(crate) meta: DatasetMeta,
    /// The name of the label coordinate (grouped operations).
    label: Option<String>,
}

fn text<'a>(attributes: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    attributes.get(name).and_then(Value::as_str)
}

/// Variable names an attribute lists (`coordinates`, `cell_measures: "area: areacella"`).
fn names_in(attributes: &Map<String, Value>, name: &str) -> Vec<String> {
    text(attributes, name).map_or_else(Vec::new, |list| {
        list.split_whitespace().filter(|w| !w.ends_with(':')).map(str::to_owned).collect()
    })
}

fn without_storage(attributes: &Map<String, Value>) -> Map<String, Value> {
    attributes
        .iter()
        .filter(|(k, _)| !STORAGE_ATTRIBUTES.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `days since YYYY-MM-DD hh:mm:ss` at `date`.
fn days_since(date: &cloudify_cftime::DateTime) -> String {
    format!(
        "days since {:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        date.year, date.month, date.day, date.hour, date.minute, date.second
    )
}

impl Plan {
    /// Plans `derivation` on its source as `source` describes it.
    ///
    /// # Errors
    /// 400 for what the grammar or the dataset refuses; what reading coordinates fails with.
    pub(crate) async fn new(host: &Host, derivation: Derivation, source: Arc<Described>) -> Result<Self, Error> {
        let operation = derivation.operation(host, &source.meta).await?;
        let (meta, label) = describe(&derivation, &source, &operation);
        Ok(Self { derivation, source, operation, meta, label })
    }

    /// The name of the label coordinate (grouped operations).
    pub(crate) fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// The result variable's name.
    pub(crate) fn var(&self) -> &str {
        &self.derivation.var
    }

    fn input(&self) -> &VariableMeta {
        &self.source.meta.variables[self.var()]
    }

    /// Bytes of input the whole result reads.
    pub(crate) fn input_bytes(&self) -> u64 {
        let v = self.input();
        v.shape.iter().product::<u64>().saturating_mul(v.dtype.size() as u64)
    }

    /// The input window of output chunk `index` of the result variable (of the whole result
    /// for `None`): the chunk's extent along the dimensions kept, all of the reduced ones.
    fn window(&self, index: Option<&[u64]>) -> Window {
        let v = self.input();
        let mut window = Window::all(v);
        let Some(index) = index else { return window };
        let out = &self.meta.variables[self.var()];
        let reduced = reduced_dims(&self.operation, &self.source.meta);
        // Output dimension k is input dimension kept[k] (a grouped one keeps its place).
        let kept: Vec<usize> = match &self.operation {
            Operation::Grouped { .. } => (0..v.shape.len()).collect(),
            Operation::FieldMean { .. } => {
                (0..v.shape.len()).filter(|&d| !reduced.contains(&v.dimensions[d])).collect()
            }
        };
        for (k, &d) in kept.iter().enumerate() {
            if reduced.contains(&v.dimensions[d]) {
                continue;
            }
            let chunk = out.chunks[k];
            window.start[d] = index[k] * chunk;
            window.count[d] = chunk.min(v.shape[d] - window.start[d]);
        }
        window
    }

    /// The result over `window` (row-major over the output's window), f64.
    async fn values(&self, host: &Host, window: &Window) -> Result<Vec<f64>, Error> {
        let (v, dataset, name) = (self.input(), &self.source.meta.id, self.var());
        match &self.operation {
            Operation::Grouped { dim, labels, of, reduction, .. } => {
                let axis = v.dimensions.iter().position(|d| d == dim).ok_or_else(|| Error::internal("lost axis"))?;
                compute::grouped(host, dataset, name, v, window, axis, of, labels.len(), *reduction).await
            }
            Operation::FieldMean { grid, weights } => {
                let grid_dims = grid.dimensions(&self.source.meta);
                let position: Vec<Option<usize>> =
                    v.dimensions.iter().map(|d| grid_dims.iter().position(|g| g == d)).collect();
                compute::field_mean(host, dataset, name, v, window, &position, weights).await
            }
        }
    }

    /// The whole result, f64, row-major over the result variable's shape.
    ///
    /// # Errors
    /// What the host's reads fail with.
    pub(crate) async fn compute_all(&self, host: &Host) -> Result<Vec<f64>, Error> {
        self.values(host, &self.window(None)).await
    }

    /// Chunk `index` of variable `name` of the derived dataset, little-endian values of the
    /// full chunk shape.
    ///
    /// # Errors
    /// 404 for an unknown variable; what the host's reads fail with.
    pub(crate) async fn chunk(&self, host: &Host, name: &str, index: &[u64]) -> Result<Vec<u8>, Error> {
        let out = self.meta.variables.get(name).ok_or_else(|| Error::not_found(format!("no variable '{name}'")))?;
        if name == self.var() {
            let window = self.window(Some(index));
            let values = self.values(host, &window).await?;
            let bytes = encode(&values, out.dtype);
            let count: Vec<u64> = out
                .chunks
                .iter()
                .zip(index)
                .zip(&out.shape)
                .map(|((&chunk, &i), &n)| chunk.min(n - i * chunk))
                .collect();
            return Ok(hyperslab::pad(&bytes, &count, &out.chunks, &out.dtype.element(&out.fill_value)));
        }
        if self.label.as_deref() == Some(name) {
            let Operation::Grouped { labels, .. } = &self.operation else { return Err(Error::internal("no labels")) };
            return Ok(match labels {
                Labels::Numbers { values, .. } => encode(values, out.dtype),
                Labels::Texts(texts) => cloudify_sdk::strings::encode(texts.iter().map(|t| t.as_bytes())),
                Labels::Dates { dates, calendar } => {
                    let day = |d| cloudify_cftime::days(d, calendar.as_deref()).unwrap_or(f64::NAN);
                    let first = dates.first().map_or(0.0, day);
                    encode(&dates.iter().map(|d| day(d) - first).collect::<Vec<_>>(), out.dtype)
                }
            });
        }
        Ok(cloudify_sdk::HostExt::chunk(host, &self.source.meta.id, name, index).await?.into_vec())
    }
}

/// The dimensions of the input (described by `meta`) that `operation` reduces.
fn reduced_dims(operation: &Operation, meta: &DatasetMeta) -> Vec<String> {
    match operation {
        Operation::Grouped { dim, .. } => vec![dim.clone()],
        Operation::FieldMean { grid, .. } => grid.dimensions(meta),
    }
}

/// `values` as little-endian elements of `dtype` (a float or an integer type).
pub(crate) fn encode(values: &[f64], dtype: DataType) -> Vec<u8> {
    match dtype {
        DataType::Float32 => values.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect(),
        DataType::Int64 => values.iter().flat_map(|&v| (v as i64).to_le_bytes()).collect(),
        _ => values.iter().flat_map(|&v| v.to_le_bytes()).collect(),
    }
}

/// The derived dataset's metadata, and the name of its label coordinate.
fn describe(derivation: &Derivation, source: &Described, operation: &Operation) -> (DatasetMeta, Option<String>) {
    let meta = &source.meta;
    let name = derivation.var.as_str();
    let v = &meta.variables[name];
    let mut variables: IndexMap<String, VariableMeta> = IndexMap::new();

    // The result: the input's layout with the reduced dimensions replaced or gone.
    let chunk_of = |d: usize| v.chunks.get(d).copied().filter(|&c| c > 0).unwrap_or(v.shape[d]).max(1);
    let (mut dims, mut shape, mut chunks) = (Vec::new(), Vec::new(), Vec::new());
    let (reduction, method, label) = match operation {
        Operation::Grouped { dim, name: label, labels, reduction, method, .. } => {
            for (d, input_dim) in v.dimensions.iter().enumerate() {
                if input_dim == dim {
                    dims.push(label.clone());
                    shape.push(labels.len() as u64);
                    chunks.push(labels.len().max(1) as u64);
                } else {
                    dims.push(input_dim.clone());
                    shape.push(v.shape[d]);
                    chunks.push(chunk_of(d));
                }
            }
            (*reduction, method.clone(), Some(label.clone()))
        }
        Operation::FieldMean { grid, .. } => {
            let grid_dims = grid.dimensions(meta);
            for (d, input_dim) in v.dimensions.iter().enumerate().filter(|(_, d)| !grid_dims.contains(d)) {
                dims.push(input_dim.clone());
                shape.push(v.shape[d]);
                chunks.push(chunk_of(d));
            }
            (Reduction::Mean, "area: mean".to_owned(), None)
        }
    };
    let packed = v.attributes.contains_key("scale_factor") || v.attributes.contains_key("add_offset");
    let dtype = match reduction {
        Reduction::Count => DataType::Int64,
        _ if v.dtype == DataType::Float32 && !packed => DataType::Float32,
        _ => DataType::Float64,
    };
    let mut attributes = without_storage(&v.attributes);
    let cell_methods = match text(&v.attributes, "cell_methods") {
        Some(before) => format!("{before} {method}"),
        None => method,
    };
    attributes.insert("cell_methods".to_owned(), Value::from(cell_methods));
    if reduction == Reduction::Count {
        attributes.remove("units");
    }
    let fill_value = if dtype == DataType::Int64 { Value::Null } else { Value::from("NaN") };
    let result =
        VariableMeta { dtype, dimensions: dims.clone(), shape, chunks, attributes, fill_value, codecs: Vec::new() };

    // The labels.
    if let (Operation::Grouped { labels, of_coord, .. }, Some(label)) = (operation, &label) {
        let n = labels.len() as u64;
        let coordinate = meta.variables.get(of_coord).map(|c| without_storage(&c.attributes)).unwrap_or_default();
        let (dtype, attributes) = match labels {
            Labels::Numbers { integer: true, .. } => (DataType::Int64, Map::new()),
            Labels::Numbers { .. } => (DataType::Float64, coordinate),
            Labels::Texts(_) => (DataType::String, Map::new()),
            Labels::Dates { dates, calendar } => {
                let mut attributes: Map<String, Value> = coordinate
                    .into_iter()
                    .filter(|(k, _)| matches!(k.as_str(), "standard_name" | "long_name" | "axis"))
                    .collect();
                let first = dates.first().map(days_since).unwrap_or_else(|| "days since 1970-01-01".to_owned());
                attributes.insert("units".to_owned(), Value::from(first));
                if let Some(calendar) = calendar {
                    attributes.insert("calendar".to_owned(), Value::from(calendar.clone()));
                }
                (DataType::Float64, attributes)
            }
        };
        let fill_value = if dtype == DataType::String { Value::from("") } else { Value::Null };
        let coord = VariableMeta {
            dtype,
            dimensions: vec![label.clone()],
            shape: vec![n],
            chunks: vec![n.max(1)],
            attributes,
            fill_value,
            codecs: Vec::new(),
        };
        variables.insert(label.clone(), coord);
    }

    // The source's coordinates of what is left: dimension coordinates, auxiliary coordinates,
    // cell measures, grid mappings, and their bounds; none over a reduced dimension.
    let reduced = reduced_dims(operation, meta);
    let mut wanted: Vec<String> = dims.clone();
    wanted.extend(names_in(&v.attributes, "coordinates"));
    if matches!(operation, Operation::Grouped { .. }) {
        wanted.extend(names_in(&v.attributes, "cell_measures"));
    }
    wanted.extend(names_in(&v.attributes, "grid_mapping").into_iter().take(1));
    let mut copied: Vec<String> = Vec::new();
    let mut i = 0;
    while i < wanted.len() {
        let candidate = wanted[i].clone();
        i += 1;
        let Some(c) = meta.variables.get(&candidate) else { continue };
        let clash = candidate == name || label.as_deref() == Some(candidate.as_str()) || copied.contains(&candidate);
        if clash || c.dimensions.iter().any(|d| reduced.contains(d) || label.as_ref() == Some(d)) {
            continue;
        }
        wanted.extend(text(&c.attributes, "bounds").map(str::to_owned));
        copied.push(candidate);
    }
    let mut result = result;
    if let Some(listed) = text(&result.attributes, "coordinates") {
        let kept: Vec<&str> = listed.split_whitespace().filter(|n| copied.iter().any(|c| c == n)).collect();
        if kept.is_empty() {
            result.attributes.remove("coordinates");
        } else {
            result.attributes.insert("coordinates".to_owned(), Value::from(kept.join(" ")));
        }
    }
    if names_in(&result.attributes, "cell_measures").iter().any(|m| !copied.contains(m)) {
        result.attributes.remove("cell_measures");
    }
    variables.insert(name.to_owned(), result);
    // Copied in the source's order, after the result and its labels.
    for (copy, c) in meta.variables.iter().filter(|(n, _)| copied.contains(n)) {
        variables.insert(copy.clone(), VariableMeta { codecs: Vec::new(), ..c.clone() });
    }
    variables.move_index(variables.get_index_of(name).unwrap_or(0), 0);

    let mut dimensions: IndexMap<String, u64> = IndexMap::new();
    for var in variables.values() {
        for (d, &n) in var.dimensions.iter().zip(&var.shape) {
            dimensions.entry(d.clone()).or_insert(n);
        }
    }
    let mut attributes = meta.attributes.clone();
    attributes.insert("source_dataset".to_owned(), Value::from(meta.id.clone()));
    // The source's version is part of the metadata, so the derived dataset's generation (and
    // every cache and ETag of it) follows the source's.
    let derived_by = format!("{} (source version {:x})", derivation.path(), source.generation);
    attributes.insert("derived_by".to_owned(), Value::from(derived_by));
    let id = derivation.id();
    (
        DatasetMeta { id, attributes, dimensions, unlimited: Vec::new(), variables, last_modified: meta.last_modified },
        label,
    )
}
