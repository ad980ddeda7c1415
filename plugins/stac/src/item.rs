//! STAC 1.1 Items and the Collection, from dataset metadata, [`Facts`] and the profile.

use cloudify_sdk::meta::{DataType, DatasetMeta};
use serde_json::{json, Map, Value};

use crate::{
    config::Profile,
    facts::{Axis, Facts},
    icechunk,
};

pub(crate) const STAC_VERSION: &str = "1.1.0";

/// Where an item's or collection's links point.
pub(crate) struct Links {
    pub self_href: String,
    pub parent: String,
    pub collection: String,
    pub root: String,
}

impl Links {
    fn to_json(&self, title: &str) -> Vec<Value> {
        vec![
            json!({"rel": "self", "href": self.self_href, "type": "application/geo+json"}),
            json!({"rel": "parent", "href": self.parent, "type": "application/json"}),
            json!({"rel": "collection", "href": self.collection, "type": "application/json", "title": title}),
            json!({"rel": "root", "href": self.root, "type": "application/json"}),
        ]
    }
}

/// Names of the data variables: neither coordinates nor cell bounds.
pub(crate) fn data_variables(meta: &DatasetMeta) -> Vec<&str> {
    let coordinates = meta.coordinate_names();
    let bounds: Vec<&str> = meta.variables.values().filter_map(|var| var.attributes.get("bounds")?.as_str()).collect();
    meta.variables
        .keys()
        .map(String::as_str)
        .filter(|name| !coordinates.contains(name) && !bounds.contains(name))
        .collect()
}

fn attribute<'a>(meta: &'a DatasetMeta, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|name| meta.attributes.get(*name)?.as_str()).filter(|text| !text.trim().is_empty())
}

/// `datacube` data type names.
fn data_type(dtype: DataType) -> &'static str {
    match dtype {
        DataType::Char => "other",
        DataType::Bool => "uint8",
        other => other.name(),
    }
}

fn cube_dimensions(facts: &Facts) -> Map<String, Value> {
    facts
        .dimensions
        .iter()
        .map(|dim| {
            let mut object = match dim.axis {
                Axis::Time => {
                    let extent = facts.time.as_ref().map_or(json!([null, null]), |(start, end)| json!([start, end]));
                    json!({"type": "temporal", "extent": extent})
                }
                Axis::X | Axis::Y | Axis::Z => {
                    let axis = match dim.axis {
                        Axis::X => "x",
                        Axis::Y => "y",
                        _ => "z",
                    };
                    let mut object = json!({"type": "spatial", "axis": axis, "extent": dim.extent.map_or(json!([null, null]), |e| json!(e))});
                    if let Some(values) = &dim.values {
                        object["values"] = json!(values);
                    }
                    object
                }
                Axis::Other | Axis::Index => {
                    let mut object = json!({"type": if dim.axis == Axis::Index { "index" } else { "other" }});
                    match (&dim.values, dim.extent) {
                        (Some(values), _) => object["values"] = json!(values),
                        (None, Some(extent)) => object["extent"] = json!(extent),
                        (None, None) => object["extent"] = json!([null, null]),
                    }
                    object
                }
            };
            if let Some(unit) = &dim.unit {
                if dim.axis != Axis::Time {
                    object["unit"] = json!(unit);
                }
            }
            if let Some(description) = &dim.description {
                object["description"] = json!(description);
            }
            (dim.name.clone(), object)
        })
        .collect()
}

fn cube_variables(meta: &DatasetMeta) -> Map<String, Value> {
    let data = data_variables(meta);
    meta.variables
        .iter()
        .filter(|(name, var)| !(var.dimensions.len() == 1 && var.dimensions[0] == **name))
        .map(|(name, var)| {
            let mut object = json!({
                "type": if data.contains(&name.as_str()) { "data" } else { "auxiliary" },
                "dimensions": var.dimensions,
                "data_type": data_type(var.dtype),
            });
            let text = |key: &str| var.attributes.get(key).and_then(Value::as_str);
            if let Some(unit) = text("units") {
                object["unit"] = json!(unit);
            }
            if let Some(description) = text("long_name").or_else(|| text("standard_name")) {
                object["description"] = json!(description);
            }
            (name.clone(), object)
        })
        .collect()
}

/// A polygon around `bbox`; two when it crosses the antimeridian (GeoJSON RFC 7946 §3.1.9).
pub(crate) fn geometry(bbox: [f64; 4]) -> Value {
    let [west, south, east, north] = bbox;
    let ring = |w: f64, e: f64| json!([[[w, south], [e, south], [e, north], [w, north], [w, south]]]);
    if west <= east {
        json!({"type": "Polygon", "coordinates": ring(west, east)})
    } else {
        json!({"type": "MultiPolygon", "coordinates": [ring(west, 180.0), ring(-180.0, east)]})
    }
}

/// Everything an item needs besides the dataset.
pub(crate) struct ItemContext<'a> {
    pub profile: &'a Profile,
    pub assets: Map<String, Value>,
    pub links: Links,
}

/// The STAC Item of one dataset.
pub(crate) fn item(meta: &DatasetMeta, facts: &Facts, context: ItemContext<'_>) -> Value {
    let profile = context.profile;
    let bbox = facts.bbox.unwrap_or([-180.0, -90.0, 180.0, 90.0]);
    let mut properties = Map::new();
    properties.insert("title".into(), json!(attribute(meta, &["title"]).unwrap_or(&meta.id)));
    let description = attribute(meta, &["description", "summary", "comment"])
        .map_or_else(|| format!("{} ({} variables)", meta.id, data_variables(meta).len()), str::to_owned);
    properties.insert("description".into(), json!(description));
    match &facts.time {
        Some((start, end)) => {
            properties.insert("datetime".into(), Value::Null);
            properties.insert("start_datetime".into(), json!(start));
            properties.insert("end_datetime".into(), json!(end));
        }
        // STAC needs a time: without a time coordinate, the data's.
        None => {
            properties
                .insert("datetime".into(), json!(updated(meta).unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())));
        }
    }
    if let Some(updated) = updated(meta) {
        properties.insert("updated".into(), json!(updated));
    }
    if !profile.providers.is_empty() {
        properties.insert("providers".into(), json!(profile.providers));
    }
    properties.insert("variables".into(), json!(data_variables(meta)));
    properties.insert("cube:dimensions".into(), Value::Object(cube_dimensions(facts)));
    properties.insert("cube:variables".into(), Value::Object(cube_variables(meta)));
    for name in &profile.attribute_properties {
        if let Some(value) = meta.attributes.get(name).filter(|v| v.is_string() || v.is_number()) {
            properties.entry(name.clone()).or_insert_with(|| value.clone());
        }
    }
    for (key, value) in &profile.item_properties {
        properties.insert(key.clone(), value.clone());
    }
    let mut links = context.links.to_json(&profile.collection.title);
    links.extend(profile.links.iter().cloned());
    let (mut assets, mut extensions) = (context.assets, profile.stac_extensions.clone());
    let repository = icechunk::repository(meta);
    if let Some(repository) = &repository {
        assets.insert(repository.asset.0.clone(), repository.asset.1.clone());
        for extension in icechunk::EXTENSIONS {
            if !extensions.iter().any(|e| e == extension) {
                extensions.push(extension.to_owned());
            }
        }
    }
    let mut item = json!({
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": extensions,
        "id": meta.id,
        "geometry": geometry(bbox),
        "bbox": bbox,
        "properties": properties,
        "links": links,
        "assets": assets,
        "collection": profile.collection.id,
    });
    // At the item's top level, where xpystac reads it (as cloudify puts it).
    if let Some(schemes) = repository.and_then(|r| r.schemes) {
        item["storage:schemes"] = Value::Object(schemes);
    }
    item
}

fn updated(meta: &DatasetMeta) -> Option<String> {
    let seconds = meta.last_modified?;
    let time = chrono::DateTime::from_timestamp(seconds, 0)?;
    Some(time.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// The extent of many items: the bbox around all (a global one when they cross the
/// antimeridian), and the earliest start to the latest end.
pub(crate) fn extent(items: &[&Value]) -> Value {
    let mut bbox: Option<[f64; 4]> = None;
    let (mut start, mut end): (Option<String>, Option<String>) = (None, None);
    for item in items {
        if let Some([w, s, e, n]) = item["bbox"]
            .as_array()
            .and_then(|b| <[f64; 4]>::try_from(b.iter().filter_map(Value::as_f64).collect::<Vec<_>>()).ok())
        {
            let (w, e) = if w > e { (-180.0, 180.0) } else { (w, e) };
            bbox = Some(bbox.map_or([w, s, e, n], |[bw, bs, be, bn]| [bw.min(w), bs.min(s), be.max(e), bn.max(n)]));
        }
        let properties = &item["properties"];
        let first = properties["start_datetime"].as_str().or_else(|| properties["datetime"].as_str());
        let last = properties["end_datetime"].as_str().or_else(|| properties["datetime"].as_str());
        // RFC 3339 in UTC with `Z` orders as text.
        if let Some(first) = first {
            if start.as_deref().is_none_or(|s| first < s) {
                start = Some(first.to_owned());
            }
        }
        if let Some(last) = last {
            if end.as_deref().is_none_or(|e| last > e) {
                end = Some(last.to_owned());
            }
        }
    }
    json!({
        "spatial": {"bbox": [bbox.unwrap_or([-180.0, -90.0, 180.0, 90.0])]},
        "temporal": {"interval": [[start, end]]},
    })
}

/// The Collection of `items`, linking to each with `item_href`.
pub(crate) fn collection(profile: &Profile, items: &[&Value], links: Vec<Value>) -> Value {
    let config = &profile.collection;
    let mut collection = json!({
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": [],
        "id": config.id,
        "title": config.title,
        "description": config.description,
        "keywords": config.keywords,
        "license": config.license,
        "extent": extent(items),
        "links": links,
    });
    if !profile.providers.is_empty() {
        collection["providers"] = json!(profile.providers);
    }
    let mut variables: Vec<&str> = items
        .iter()
        .filter_map(|i| i["properties"]["variables"].as_array())
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    variables.sort_unstable();
    variables.dedup();
    collection["summaries"] = json!({"variables": variables});
    collection
}
