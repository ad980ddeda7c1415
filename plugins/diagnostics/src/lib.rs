//! cloudify's diagnostics plugin: groupby, resample and area means computed on the server,
//! as xarray computes them, instead of cloudify's `eval` of text from the URL.
//!
//! * `GET /datasets/{id}/groupby/{var}/{coord}/{action}`: `coord` a 1-D coordinate of the
//!   variable (groups: its distinct values) or `time.month`, `time.season`, `time.year`,
//!   `time.dayofyear`, `time.hour` (any time coordinate's name before the dot);
//! * `GET /datasets/{id}/resample/{var}/{freq}/{action}`: along the variable's time dimension,
//!   `freq` one of `nD`, `nMS`, `QS`/`QS-DEC`…, `nYS`, in the dataset's calendar, empty bins kept;
//! * `GET /datasets/{id}/fldmean/{var}`: the area mean over the variable's grid (CDO's
//!   `fldmean`; weights from `crates/cf`: `cell_measures` area, cos(latitude), or equal for
//!   HEALPix and unstructured cells).
//!
//! Every result is also a dataset of its own, `{id}~groupby~{var}~{coord}~{action}`,
//! `{id}~resample~{var}~{freq}~{action}`, `{id}~fldmean~{var}` (`~` never appears in the
//! grammar's segments; a configured dataset of the same id wins), served by `/zarr`, `/info`,
//! `/plot` and every other plugin, each output chunk computed from the input chunks it needs
//! (`derived`). Such datasets are listed in `/datasets` only when configured
//! (`[[plugin.diagnostics.derived]]`).
//!
//! Actions: `mean`, `min`, `max`, `sum`, `count`, `std`, `var` (ddof 0), `median`, `first`,
//! `last`, NaN and fill values skipped as xarray's defaults do. The answer is xarray's
//! `DataArray.to_dict()` shape as JSON (`dims`, `attrs` with `cell_methods`, `coords`, `data`
//! nested, `null` where no value), an HTML summary for browsers (`Accept: text/html`), or a
//! NetCDF4 file (`?format=netcdf`); a whole result whose input is over `max_input_bytes` is
//! refused (413) in favour of its dataset's chunked `/zarr`. Nothing from the URL is evaluated: each segment is matched
//! against a fixed grammar, and a GET changes nothing.
//!
//! Config (`[plugin.diagnostics]`): see `config.rs`.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod compute;
mod config;
mod derived;
mod operation;
mod page;

use std::sync::Arc;

use cloudify_sdk::{
    abi::HostError, meta::DatasetMeta, Error, ErrorKind, Host, HostExt, Plugin, Provider, Request, Response, Route,
    Scope,
};
use cloudify_zarr_store::{reply, DescribedDatasets, Document};
use serde_json::{json, Map, Value};

use crate::{
    config::Config,
    derived::Plan,
    operation::{Derivation, Operation},
};

cloudify_sdk::declare_plugin!(name: "diagnostics", init: init);

fn init(host: Host) -> Result<Plugin, String> {
    let config: Config = host.config().map_err(|err| err.to_string())?;
    let service = Arc::new(Diagnostics::new(config, host)?);
    let mut plugin = Plugin::new("diagnostics", env!("CARGO_PKG_VERSION"))
        .description("groupby, resample and area means computed on the server, each result a dataset");
    let routes = [
        ("/groupby/{var}/{coord}/{action}", "A variable grouped by a coordinate or a part of time, reduced"),
        ("/resample/{var}/{freq}/{action}", "A variable resampled along time, reduced"),
        ("/fldmean/{var}", "The area mean of a variable over its grid"),
    ];
    for (path, summary) in routes {
        let service = Arc::clone(&service);
        plugin = plugin.route(
            Route::get(Scope::Dataset, path, move |host, req| {
                let service = Arc::clone(&service);
                async move { service.answer(&host, &req).await }
            })
            .summary(summary)
            .content_type("application/json"),
        );
    }
    Ok(plugin.dataset_source(cloudify_sdk::dataset_source(DerivedDatasets(service))))
}

/// What an answer is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Html,
    Netcdf,
}

impl Format {
    /// `?format=` first, else `Accept` (browsers ask for HTML), else JSON.
    fn of(req: &Request) -> Result<Self, Error> {
        let asked = req.query.split('&').find_map(|pair| pair.strip_prefix("format="));
        match asked {
            Some("json") => Ok(Self::Json),
            Some("html") => Ok(Self::Html),
            Some("netcdf" | "nc") => Ok(Self::Netcdf),
            Some(other) => Err(Error::invalid(format!("unknown format '{other}': json, html or netcdf"))),
            None if req.header("accept").is_some_and(|a| a.contains("text/html")) => Ok(Self::Html),
            None => Ok(Self::Json),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Html => "text/html; charset=utf-8",
            Self::Netcdf => "application/x-netcdf",
        }
    }
}

struct Diagnostics {
    config: Config,
    /// The plugin's own handle, for the datasets it provides.
    host: Host,
    /// Whole results as answered, by source version, derivation and format.
    results: moka::sync::Cache<String, Arc<Document>>,
    /// Output chunks of derived datasets, by source version, dataset, variable and index;
    /// concurrent requests for one chunk compute it once.
    chunks: moka::future::Cache<String, Arc<Vec<u8>>>,
    plans: moka::sync::Cache<String, Arc<Plan>>,
    described: DescribedDatasets,
    /// The ids of `[[plugin.diagnostics.derived]]`.
    listed: Vec<String>,
}

fn weigh(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

impl Diagnostics {
    fn new(config: Config, host: Host) -> Result<Self, String> {
        let listed = config
            .derived
            .iter()
            .map(|d| {
                let segments: Vec<&str> = d.operation.split('/').collect();
                let (operation, rest) = segments.split_first().ok_or("an empty operation")?;
                let mut rest = rest.to_vec();
                rest.insert(0, &d.variable);
                Derivation::new(&d.dataset, operation, &rest)
                    .map(|d| d.id())
                    .map_err(|e| format!("[[plugin.diagnostics.derived]] {}/{}: {e}", d.dataset, d.operation))
            })
            .collect::<Result<Vec<String>, String>>()?;
        let results = moka::sync::Cache::builder()
            .weigher(|_, doc: &Arc<Document>| weigh(doc.body.len()))
            .max_capacity(config.cache_bytes)
            .build();
        let chunks = moka::future::Cache::builder()
            .weigher(|_, chunk: &Arc<Vec<u8>>| weigh(chunk.len()))
            .max_capacity(config.cache_bytes)
            .build();
        let plans = moka::sync::Cache::builder().max_capacity(256).build();
        Ok(Self { config, host, results, chunks, plans, described: DescribedDatasets::default(), listed })
    }

    /// `derivation` planned on its source's current version.
    async fn plan(&self, host: &Host, derivation: &Derivation) -> Result<Arc<Plan>, Error> {
        let source = self.described.get(host, &derivation.source)?;
        let id = derivation.id();
        if let Some(plan) = self.plans.get(&id).filter(|p| p.source.generation == source.generation) {
            return Ok(plan);
        }
        let plan = Arc::new(Plan::new(host, derivation.clone(), source).await?);
        self.plans.insert(id, Arc::clone(&plan));
        Ok(plan)
    }

    async fn answer(&self, host: &Host, req: &Request) -> Response {
        self.try_answer(host, req).await.unwrap_or_else(Response::from)
    }

    async fn try_answer(&self, host: &Host, req: &Request) -> Result<Response, Error> {
        let id = req.dataset_id().unwrap_or_default();
        let param = |name: &str| req.param(name).unwrap_or_default();
        let derivation = if req.param("coord").is_some() {
            Derivation::new(id, "groupby", &[param("var"), param("coord"), param("action")])?
        } else if req.param("freq").is_some() {
            Derivation::new(id, "resample", &[param("var"), param("freq"), param("action")])?
        } else {
            Derivation::new(id, "fldmean", &[param("var")])?
        };
        let format = Format::of(req)?;
        let plan = self.plan(host, &derivation).await?;
        let last_modified = plan.source.last_modified;
        let key = format!("{:x}\u{0}{}\u{0}{format:?}", plan.source.generation, derivation.id());
        let answer = |doc| {
            reply(req, doc, last_modified, &self.config.cache_control, format.content_type())
                .with_header("Vary", "Accept")
        };
        if let Some(doc) = self.results.get(&key) {
            return Ok(answer(doc));
        }
        let base = req.base_url();
        let body = match format {
            Format::Html => {
                let plot = host.plugins().iter().any(|p| p == "plot");
                page::summary(&plan, &base, plot).into_bytes()
            }
            Format::Json | Format::Netcdf => {
                self.check_whole(&plan, &base)?;
                let values = plan.compute_all(host).await?;
                if format == Format::Json {
                    to_dict(host, &plan, &values).await.into_bytes()
                } else {
                    netcdf(host, &plan, values).await?
                }
            }
        };
        let doc = Arc::new(Document::new(body.into()));
        if self.config.cache_bytes > 0 {
            self.results.insert(key, Arc::clone(&doc));
        }
        Ok(answer(doc))
    }

    /// Refuses a whole result over `max_result_values`, or reading over `max_input_bytes` of
    /// input for it, naming the chunked `/zarr` of its dataset instead.
    fn check_whole(&self, plan: &Plan, base: &str) -> Result<(), Error> {
        let zarr = format!("{base}/datasets/{}/zarr", plan.meta.id);
        let values: u64 = plan.meta.variables[plan.var()].shape.iter().product();
        if values > self.config.max_result_values {
            let max = self.config.max_result_values;
            let message = format!(
                "the result has {values} values, more than max_result_values = {max}; read it chunk by chunk at {zarr}"
            );
            return Err(Error::new(ErrorKind::TOO_LARGE, message));
        }
        let input = plan.input_bytes();
        if input > self.config.max_input_bytes {
            let max = self.config.max_input_bytes;
            let message = format!("the result reads {input} bytes of input, more than max_input_bytes = {max} at once; read it chunk by chunk at {zarr}");
            return Err(Error::new(ErrorKind::TOO_LARGE, message));
        }
        Ok(())
    }

    /// Chunk `index` of `variable` of derived dataset `id`.
    async fn chunk(&self, id: &str, variable: &str, index: &[u64]) -> Result<Vec<u8>, Error> {
        let derivation = Derivation::from_id(id).ok_or_else(|| Error::not_found(format!("no dataset '{id}'")))?;
        let plan = self.plan(&self.host, &derivation).await?;
        let key = format!("{:x}\u{0}{id}\u{0}{variable}\u{0}{index:?}", plan.source.generation);
        let computed = self
            .chunks
            .try_get_with(key, async { plan.chunk(&self.host, variable, index).await.map(Arc::new) })
            .await
            .map_err(|err| Error::new(err.kind(), err.to_string()))?;
        Ok(computed.as_ref().clone())
    }
}

/// The diagnostics plugin as a dataset provider: configured derived datasets listed, any
/// derived id resolved when asked.
struct DerivedDatasets(Arc<Diagnostics>);

fn host_error(err: &Error) -> HostError {
    HostError::new(err.kind(), err.to_string())
}

impl Provider for DerivedDatasets {
    fn list(&self) -> Vec<String> {
        self.0.listed.clone()
    }

    fn metadata(&self, dataset: &str) -> Result<DatasetMeta, HostError> {
        let derivation = Derivation::from_id(dataset)
            .ok_or_else(|| HostError::new(ErrorKind::NOT_FOUND, format!("no dataset '{dataset}'")))?;
        // The host allows blocking here; `pollster` (unlike `futures`' executor) also allows a
        // derived dataset of a derived dataset, described from within this call.
        let plan = pollster::block_on(self.0.plan(&self.0.host, &derivation)).map_err(|e| host_error(&e))?;
        Ok(plan.meta.clone())
    }

    fn read_chunk(
        &self,
        dataset: &str,
        variable: &str,
        index: &[u64],
    ) -> impl std::future::Future<Output = Result<Vec<u8>, HostError>> + Send + 'static {
        let (service, dataset, variable, index) =
            (Arc::clone(&self.0), dataset.to_owned(), variable.to_owned(), index.to_vec());
        async move { service.chunk(&dataset, &variable, &index).await.map_err(|e| host_error(&e)) }
    }
}

/// Row-major `values` of `shape` as nested lists; NaN as `null`.
fn nested(values: &[f64], shape: &[usize]) -> Value {
    match shape.split_first() {
        None => values.first().map_or(Value::Null, |&v| number(v)),
        Some((&n, rest)) => {
            let size: usize = rest.iter().product();
            Value::Array((0..n).map(|i| nested(&values[i * size..(i + 1) * size], rest)).collect())
        }
    }
}

fn number(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}

/// The result in the shape of xarray's `DataArray.to_dict()`.
async fn to_dict(host: &Host, plan: &Plan, values: &[f64]) -> String {
    let out = &plan.meta.variables[plan.var()];
    let mut coords = Map::new();
    if let Operation::Grouped { name, labels, .. } = &plan.operation {
        coords.insert(name.clone(), json!({"dims": [name], "attrs": {}, "data": labels.to_json()}));
    }
    for (dim, data) in coordinates(host, &plan.source.meta, &out.dimensions).await {
        coords.entry(dim.clone()).or_insert_with(|| json!({"dims": [dim], "attrs": {}, "data": data}));
    }
    let shape: Vec<usize> = out.shape.iter().map(|&n| n as usize).collect();
    json!({
        "name": plan.var(),
        "dims": out.dimensions,
        "attrs": out.attributes,
        "coords": coords,
        "data": nested(values, &shape),
    })
    .to_string()
}

/// The labels of `dims` that have 1-D coordinates in the source: dates for time, numbers
/// otherwise; coordinates that cannot be read are left out.
async fn coordinates(host: &Host, meta: &DatasetMeta, dims: &[String]) -> Vec<(String, Vec<Value>)> {
    let mut coords = Vec::new();
    for dim in dims {
        let Some(coord) = meta.variables.get(dim).filter(|c| c.dimensions == [dim.clone()]) else { continue };
        let Ok(values) = cloudify_cf::read::all(host, &meta.id, dim, coord, 64 << 20).await else { continue };
        let labels = match cloudify_cf::time::TimeAxis::decode(coord, &values) {
            Ok(axis) if cloudify_cf::role_of(dim, coord) == cloudify_cf::Role::Time => {
                axis.dates.iter().map(|d| Value::from(cloudify_cf::time::rfc3339(d))).collect()
            }
            _ => values.iter().map(|&v| if v.is_finite() { Value::from(v) } else { Value::Null }).collect(),
        };
        coords.push((dim.clone(), labels));
    }
    coords
}

/// The derived dataset as a NetCDF4 file: the result `values`, its labels and the source's
/// coordinates it keeps.
async fn netcdf(host: &Host, plan: &Plan, values: Vec<f64>) -> Result<Vec<u8>, Error> {
    let mut arrays = std::collections::HashMap::new();
    for (name, var) in &plan.meta.variables {
        let data = if name == plan.var() {
            derived::encode(&values, var.dtype)
        } else if plan.label() == Some(name.as_str()) {
            plan.chunk(host, name, &[0]).await?
        } else {
            let zero = vec![0; var.shape.len()];
            HostExt::region(host, &plan.source.meta.id, name, &zero, &var.shape).await?.into_vec()
        };
        arrays.insert(name.clone(), data);
    }
    let meta = plan.meta.clone();
    host.run_blocking(move || {
        let file = tempfile::Builder::new().suffix(".nc").tempfile().map_err(|e| Error::internal(e.to_string()))?;
        cloudify_netcdf::write_netcdf4(file.path(), &meta, &arrays).map_err(|e| Error::internal(e.to_string()))?;
        std::fs::read(file.path()).map_err(|e| Error::internal(e.to_string()))
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_nest_like_to_dict() {
        assert_eq!(nested(&[1.0, f64::NAN, 3.0, 4.0], &[2, 2]), json!([[1.0, null], [3.0, 4.0]]));
    }
}
