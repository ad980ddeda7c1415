//! Cloud products: the assets of an item that are whole datasets in a cloud format, told
//! apart as DataPoint tells them, and opened into the data core.

use std::{fmt, path::PathBuf, time::Duration};

use cloudify_dataset::SharedSource;
use cloudify_open::{Entry, Format, Opener};
use serde_json::{Map, Value};

use crate::{client::Http, Error, Item, Mapper, Result};

/// The cloud formats DataPoint opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloudFormat {
    /// A kerchunk reference set (JSON or parquet).
    Kerchunk,
    /// A CF aggregation file.
    Cfa,
    /// A Zarr store.
    Zarr,
    /// A cloud-optimised GeoTIFF (listed, not opened here).
    Cog,
}

impl CloudFormat {
    /// DataPoint's order of preference.
    pub const ALL: [Self; 4] = [Self::Kerchunk, Self::Cfa, Self::Cog, Self::Zarr];

    /// The format a `cloud_format` value names (exactly, as DataPoint compares).
    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.label() == label)
    }

    /// The value of `cloud_format` naming it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Kerchunk => "kerchunk",
            Self::Cfa => "CFA",
            Self::Zarr => "zarr",
            Self::Cog => "cog",
        }
    }

    /// The format an asset key implies when the asset does not say (DataPoint's
    /// `method_format`).
    pub fn of_key(key: &str) -> Option<Self> {
        match key {
            "reference_file" => Some(Self::Kerchunk),
            "reference_file_2" => Some(Self::Cfa),
            "zstore" => Some(Self::Zarr),
            "cog" => Some(Self::Cog),
            _ => None,
        }
    }

    /// The asset field holding the keyword arguments DataPoint opens this format with.
    fn kwargs_field(self) -> &'static str {
        match self {
            Self::Kerchunk | Self::Zarr => "open_zarr_kwargs",
            Self::Cfa => "open_xarray_kwargs",
            Self::Cog => "open_cog_kwargs",
        }
    }
}

impl fmt::Display for CloudFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The cloud format of asset `key`: the asset's `label` field (found through `mapper`) when
/// it has one, else what its key implies; `None` for other assets. An asset naming a format
/// DataPoint does not know is no product, whatever its key.
pub fn identify_cloud_type(key: &str, asset: &Value, label: &str, mapper: &Mapper) -> Option<CloudFormat> {
    match mapper.get(label, asset) {
        Some(Value::String(named)) if !named.is_empty() => CloudFormat::from_label(named),
        _ => CloudFormat::of_key(key),
    }
}

/// Whether a product's data can be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Not checked ([`ProductOptions::check_reachable`] off).
    Unchecked,
    /// Its URL answers a HEAD request with 200 (a Zarr store: its `.zmetadata`).
    Reachable,
    /// A local path that exists.
    LocalOnly,
    /// Neither.
    Unreachable,
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unchecked => "unchecked",
            Self::Reachable => "all",
            Self::LocalOnly => "local-only",
            Self::Unreachable => "unreachable",
        })
    }
}

/// How an item's products are found.
#[derive(Debug, Clone)]
pub struct ProductOptions {
    /// The formats taken, in order of preference.
    pub priority: Vec<CloudFormat>,
    /// The asset field naming the format.
    pub label: String,
    /// Asset fields kept elsewhere (`href`, `open_zarr_kwargs`, ...).
    pub asset_mapper: Mapper,
    /// Whether each product's URL is asked (HEAD) whether it answers.
    pub check_reachable: bool,
    /// Whether products found unreachable are kept.
    pub show_unreachable: bool,
    /// Time-out of each reachability check.
    pub timeout: Duration,
}

impl Default for ProductOptions {
    fn default() -> Self {
        Self {
            priority: CloudFormat::ALL.to_vec(),
            label: "cloud_format".to_owned(),
            asset_mapper: Mapper::default(),
            check_reachable: false,
            show_unreachable: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// One cloud product: an asset of an item that is a whole dataset.
#[derive(Debug, Clone)]
pub struct Product {
    /// `{item id}-{asset key}`, as DataPoint names it.
    pub id: String,
    /// The item's id.
    pub item_id: String,
    /// The item's collection.
    pub collection: Option<String>,
    /// The asset's key.
    pub asset_key: String,
    /// Where it is (relative hrefs resolved against the item's `self` link).
    pub href: String,
    /// Its format.
    pub format: CloudFormat,
    /// The keyword arguments DataPoint would give xarray.
    pub open_kwargs: Map<String, Value>,
    /// Whether it can be reached.
    pub visibility: Visibility,
    /// Its format's place in the priority list.
    pub order: usize,
    /// The item's properties.
    pub properties: Map<String, Value>,
}

/// `href` resolved against the document at `base` (an item's `self` link).
fn resolve(href: &str, base: Option<&str>) -> String {
    let absolute = href.starts_with('/') || href.contains("://");
    match base.and_then(|b| b.rfind('/').map(|at| &b[..=at])) {
        Some(folder) if !absolute => {
            let mut parts: Vec<&str> = folder.trim_end_matches('/').split('/').collect();
            for segment in href.split('/') {
                match segment {
                    "." | "" => {}
                    ".." if parts.len() > 3 => {
                        parts.pop();
                    }
                    ".." => {}
                    other => parts.push(other),
                }
            }
            parts.join("/")
        }
        _ => href.to_owned(),
    }
}

impl Item {
    /// The item's cloud products, in asset order: assets whose format
    /// ([`identify_cloud_type`]) is in `options.priority`.
    pub fn products(&self, options: &ProductOptions) -> Cluster {
        let http = options.check_reachable.then(|| Http::new(options.timeout));
        let mut products = Vec::new();
        for (key, asset) in &self.assets {
            let Some(format) = identify_cloud_type(key, asset, &options.label, &options.asset_mapper) else { continue };
            let Some(order) = options.priority.iter().position(|&f| f == format) else { continue };
            let Some(href) = options.asset_mapper.get("href", asset).and_then(Value::as_str) else {
                tracing::warn!(item = self.id, asset = key, "a cloud product without an href: skipped");
                continue;
            };
            let href = resolve(href, self.self_href());
            let open_kwargs = options
                .asset_mapper
                .get(format.kwargs_field(), asset)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let visibility = http.as_ref().map_or(Visibility::Unchecked, |http| visibility(http, &href, format));
            if visibility == Visibility::Unreachable && !options.show_unreachable {
                tracing::warn!(
                    product = format!("{}-{key}", self.id),
                    href,
                    "not reachable: skipped (show_unreachable keeps it)"
                );
                continue;
            }
            products.push(Product {
                id: format!("{}-{key}", self.id),
                item_id: self.id.clone(),
                collection: self.collection.clone(),
                asset_key: key.clone(),
                href,
                format,
                open_kwargs,
                visibility,
                order,
                properties: self.properties.clone(),
            });
        }
        Cluster { item_id: self.id.clone(), products }
    }
}

/// Whether `href` answers: a local path exists, a URL answers HEAD with 200 (a Zarr store at
/// its `.zmetadata` or `zarr.json`).
fn visibility(http: &Http, href: &str, format: CloudFormat) -> Visibility {
    if !href.contains("://") || href.starts_with("file://") {
        let path = href.strip_prefix("file://").unwrap_or(href);
        return if std::path::Path::new(path).exists() { Visibility::LocalOnly } else { Visibility::Unreachable };
    }
    let probes: Vec<String> = match format {
        CloudFormat::Zarr => {
            let store = href.trim_end_matches('/');
            vec![format!("{store}/.zmetadata"), format!("{store}/zarr.json")]
        }
        _ => vec![href.to_owned()],
    };
    if probes.iter().any(|probe| http.head(probe) == Some(200)) {
        Visibility::Reachable
    } else {
        Visibility::Unreachable
    }
}

impl Product {
    /// The product as a source of the data core, read through `opener` (its reference
    /// cache, byte stores and limits). A reference set's or aggregation's targets are
    /// confined to the product's own host or folder and to `allow_targets` (URL prefixes,
    /// folders, `https://*`). Blocking: call it on a blocking thread of a tokio runtime.
    ///
    /// # Errors
    /// [`Error::Product`]: a COG (not opened here), or why the data cannot be read.
    pub fn open(&self, opener: &Opener, allow_targets: &[String]) -> Result<SharedSource> {
        let format = match self.format {
            CloudFormat::Zarr => Format::Zarr,
            CloudFormat::Kerchunk => Format::References,
            CloudFormat::Cfa => Format::NetCdf,
            CloudFormat::Cog => {
                return Err(Error::Product(format!("{}: cloud-optimised GeoTIFFs are not opened here", self.id)));
            }
        };
        let location = self.href.strip_prefix("file://").unwrap_or(&self.href);
        let entry = Entry {
            id: self.item_id.clone(),
            path: PathBuf::from(location),
            concat_dim: None,
            allow_targets: allow_targets.to_vec(),
        };
        opener
            .open_as(&entry, format)
            .map_err(|reason| Error::Product(format!("{} ({}): {reason}", self.id, self.href)))
    }
}

impl fmt::Display for Product {
    /// DataPoint's `info()`: the product, its facts, its item's properties.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "<DataPointCloudProduct: {} (Format: {})>", self.id, self.format)?;
        writeln!(f, " - item: {}", self.item_id)?;
        writeln!(f, " - collection: {}", self.collection.as_deref().unwrap_or("-"))?;
        writeln!(f, " - asset_id: {}", self.asset_key)?;
        writeln!(f, " - href: {}", self.href)?;
        writeln!(f, " - cloud_format: {}", self.format)?;
        writeln!(f, " - visibility: {}", self.visibility)?;
        writeln!(f, " - open_kwargs: {}", Value::Object(self.open_kwargs.clone()))?;
        writeln!(f, "Attributes:")?;
        for (key, value) in &self.properties {
            let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            writeln!(f, " - {key}: {value}")?;
        }
        Ok(())
    }
}

/// The products of an item (or of several), DataPoint's `DataPointCluster`.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    item_id: String,
    products: Vec<Product>,
}

impl Cluster {
    /// The products gathered from several clusters (a search's items).
    pub fn merge(clusters: impl IntoIterator<Item = Self>) -> Self {
        let products = clusters.into_iter().flat_map(|c| c.products).collect();
        Self { item_id: "search".to_owned(), products }
    }

    /// The products, in asset order.
    pub fn products(&self) -> &[Product] {
        &self.products
    }

    /// The product at a position or with an id; without one, the first of the most
    /// preferred format.
    ///
    /// # Errors
    /// [`Error::Product`] naming what there is.
    pub fn get(&self, key: Option<&str>) -> Result<&Product> {
        let found = match key {
            None => self.products.iter().min_by_key(|p| p.order),
            Some(key) => match key.parse::<usize>() {
                Ok(index) => self.products.get(index),
                Err(_) => self.products.iter().find(|p| p.id == key || p.asset_key == key),
            },
        };
        found.ok_or_else(|| {
            let ids: Vec<&str> = self.products.iter().map(|p| p.id.as_str()).collect();
            Error::Product(format!(
                "no product {} of {}: there are [{}]",
                key.unwrap_or("at all"),
                self.item_id,
                ids.join(", ")
            ))
        })
    }
}

impl fmt::Display for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "<DataPointCluster: {} (Datasets: {})>", self.item_id, self.products.len())?;
        for product in &self.products {
            writeln!(f, " - {}: {} ({})", product.id, product.format, product.visibility)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn cloud_types_come_from_the_label_then_the_key() {
        let none = Mapper::default();
        assert_eq!(identify_cloud_type("zstore", &json!({}), "cloud_format", &none), Some(CloudFormat::Zarr));
        assert_eq!(
            identify_cloud_type("x", &json!({"cloud_format": "CFA"}), "cloud_format", &none),
            Some(CloudFormat::Cfa)
        );
        // The field wins over the key, and names are compared exactly.
        assert_eq!(
            identify_cloud_type("zstore", &json!({"cloud_format": "kerchunk"}), "cloud_format", &none),
            Some(CloudFormat::Kerchunk)
        );
        assert_eq!(identify_cloud_type("zstore", &json!({"cloud_format": "Zarr"}), "cloud_format", &none), None);
        assert_eq!(
            identify_cloud_type("data0001", &json!({"type": "application/netcdf"}), "cloud_format", &none),
            None
        );
        // A renamed label, and one found through a mapper.
        assert_eq!(identify_cloud_type("a", &json!({"fmt": "zarr"}), "fmt", &none), Some(CloudFormat::Zarr));
        let mapper = Mapper::new([("cloud_format", "extra.format")]);
        assert_eq!(
            identify_cloud_type("a", &json!({"extra": {"format": "kerchunk"}}), "cloud_format", &mapper),
            Some(CloudFormat::Kerchunk)
        );
    }

    #[test]
    fn products_follow_priority_and_resolve_relative_hrefs() {
        let document = json!({
            "id": "tas",
            "links": [{"rel": "self", "href": "https://s/stac/items/tas.json"}],
            "assets": {
                "zstore": {"href": "https://s/tas.zarr", "open_zarr_kwargs": {"consolidated": true}},
                "reference_file": {"href": "../refs/tas.json"},
                "data0001": {"href": "https://s/tas.nc"},
                "cog": {"href": "tas.tif"},
            }
        });
        let item = Item::from_json(document, &Mapper::default()).unwrap();
        let cluster = item.products(&ProductOptions::default());
        let ids: Vec<&str> = cluster.products().iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["tas-zstore", "tas-reference_file", "tas-cog"]);
        assert_eq!(cluster.products()[1].href, "https://s/stac/refs/tas.json");
        assert_eq!(cluster.products()[2].href, "https://s/stac/items/tas.tif");
        assert_eq!(cluster.products()[0].open_kwargs["consolidated"], true);
        // Without a key, the most preferred format; by position or id otherwise.
        assert_eq!(cluster.get(None).unwrap().format, CloudFormat::Kerchunk);
        assert_eq!(cluster.get(Some("0")).unwrap().asset_key, "zstore");
        assert_eq!(cluster.get(Some("tas-cog")).unwrap().format, CloudFormat::Cog);
        assert!(cluster.get(Some("9")).unwrap_err().to_string().contains("tas-zstore"));
        let only_zarr = ProductOptions { priority: vec![CloudFormat::Zarr], ..Default::default() };
        assert_eq!(item.products(&only_zarr).products().len(), 1);
        assert!(cluster.to_string().contains(" - tas-zstore: zarr (unchecked)"));
    }

    #[test]
    fn local_products_are_local_only_or_unreachable() {
        let http = Http::new(Duration::from_secs(1));
        let dir = tempfile::tempdir().unwrap();
        let here = dir.path().to_string_lossy().into_owned();
        assert_eq!(visibility(&http, &here, CloudFormat::Zarr), Visibility::LocalOnly);
        assert_eq!(visibility(&http, &format!("{here}/missing.json"), CloudFormat::Kerchunk), Visibility::Unreachable);
    }
}
