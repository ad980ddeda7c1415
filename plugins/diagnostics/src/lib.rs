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
//! Actions: `mean`, `min`, `max`, `sum`, `count`, `std`, `var` (ddof 0), `median`, `first`,
//! `last`, NaN and fill values skipped as xarray's defaults do. The answer is xarray's
//! `DataArray.to_dict()` shape as JSON (`dims`, `attrs` with `cell_methods`, `coords`, `data`
//! nested, `null` where no value). Nothing from the URL is evaluated: each segment is matched
//! against a fixed grammar, and a GET changes nothing.
//!
//! Config (`[plugin.diagnostics]`): see `config.rs`.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod compute;
mod config;
mod operation;

use std::sync::Arc;

use cloudify_sdk::{meta::DatasetMeta, Error, Host, HostExt, Plugin, Request, Response, Route, Scope};
use cloudify_zarr_store::{reply, DescribedDatasets, Document};
use serde_json::{json, Map, Value};

use crate::{compute::Computed, config::Config};

cloudify_sdk::declare_plugin!(name: "diagnostics", init: init);

fn init(host: Host) -> Result<Plugin, String> {
    let config: Config = host.config().map_err(|err| err.to_string())?;
    let service = Arc::new(Diagnostics::new(config));
    let mut plugin = Plugin::new("diagnostics", env!("CARGO_PKG_VERSION"))
        .description("groupby, resample and area means computed on the server");
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
    Ok(plugin)
}

struct Diagnostics {
    config: Config,
    results: moka::sync::Cache<String, Arc<Document>>,
    described: DescribedDatasets,
}

/// Path segments are names, actions, frequencies: nothing else gets near the computation.
fn plain(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= 256
        && segment.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

impl Diagnostics {
    fn new(config: Config) -> Self {
        let results = moka::sync::Cache::builder()
            .weigher(|_, doc: &Arc<Document>| u32::try_from(doc.body.len()).unwrap_or(u32::MAX))
            .max_capacity(config.cache_bytes)
            .build();
        let described = DescribedDatasets::default();
        Self { config, results, described }
    }

    async fn answer(&self, host: &Host, req: &Request) -> Response {
        self.try_answer(host, req).await.unwrap_or_else(Response::from)
    }

    async fn try_answer(&self, host: &Host, req: &Request) -> Result<Response, Error> {
        let id = req.dataset_id().unwrap_or_default();
        let segment = |name: &str| -> Result<&str, Error> {
            let value = req.param(name).unwrap_or_default();
            if plain(value) {
                Ok(value)
            } else {
                Err(Error::invalid(format!("'{value}' is not a {name}: letters, digits, '.', '_' and '-' only")))
            }
        };
        let var = segment("var")?;
        let described = self.described.get(host, id)?;
        let meta = &described.meta;
        let key = format!("{:x}\u{0}{}", described.generation, req.path);
        let last_modified = described.last_modified;
        if let Some(doc) = self.results.get(&key) {
            return Ok(reply(req, doc, last_modified, &self.config.cache_control, "application/json"));
        }
        let operation = if req.param("coord").is_some() {
            operation::groupby(host, meta, var, segment("coord")?, segment("action")?).await?
        } else if req.param("freq").is_some() {
            operation::resample(host, meta, var, segment("freq")?, segment("action")?).await?
        } else {
            operation::fldmean(meta, var)?
        };
        let computed = compute::compute(host, meta, var, operation, self.config.max_result_values).await?;
        let doc = Arc::new(Document::new(to_dict(var, meta, &computed).into_bytes().into()));
        if self.config.cache_bytes > 0 {
            self.results.insert(key, Arc::clone(&doc));
        }
        Ok(reply(req, doc, last_modified, &self.config.cache_control, "application/json"))
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
fn to_dict(var: &str, meta: &DatasetMeta, computed: &Computed) -> String {
    let mut attrs: Map<String, Value> = meta.variables[var].attributes.clone();
    let method = match attrs.get("cell_methods").and_then(Value::as_str) {
        Some(before) => format!("{before} {}", computed.method),
        None => computed.method.clone(),
    };
    attrs.insert("cell_methods".to_owned(), Value::from(method));
    let coords: Map<String, Value> = computed
        .coords
        .iter()
        .map(|(name, data)| (name.clone(), json!({"dims": [name], "attrs": {}, "data": data})))
        .collect();
    json!({
        "name": var,
        "dims": computed.dims,
        "attrs": attrs,
        "coords": coords,
        "data": nested(&computed.values, &computed.shape),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_plain_names() {
        assert!(plain("time.month") && plain("QS-DEC") && plain("tas_2"));
        for hostile in ["time.month).__class__", "__import__('os')", "a b", "", "x/y", "a;b"] {
            assert!(!plain(hostile), "{hostile}");
        }
        assert_eq!(nested(&[1.0, f64::NAN, 3.0, 4.0], &[2, 2]), json!([[1.0, null], [3.0, 4.0]]));
    }
}
