//! One STAC item and the accessors DataPoint gives it; mappers for fields kept elsewhere.

use std::fmt;

use indexmap::IndexMap;
use serde_json::{Map, Value};

/// Where fields are found, when a catalogue keeps them elsewhere than STAC does: key →
/// dotted path (`"properties.model.assets"`; array positions as numbers). Keys without a
/// mapping are read where STAC puts them. DataPoint's `DataPointMapper`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapper {
    paths: IndexMap<String, String>,
}

impl Mapper {
    /// A mapper of `key → dotted path` pairs.
    pub fn new<K: Into<String>, P: Into<String>>(paths: impl IntoIterator<Item = (K, P)>) -> Self {
        Self { paths: paths.into_iter().map(|(k, p)| (k.into(), p.into())).collect() }
    }

    /// The value `key` names in `document`: at its mapped path, else at `key`.
    pub fn get<'d>(&self, key: &str, document: &'d Value) -> Option<&'d Value> {
        let Some(path) = self.paths.get(key) else { return document.get(key) };
        path.split('.').try_fold(document, |at, segment| match at {
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => at.get(segment),
        })
    }
}

/// One item of a search: a dataset described in STAC.
#[derive(Debug, Clone)]
pub struct Item {
    /// Its id.
    pub id: String,
    /// The collection it belongs to.
    pub collection: Option<String>,
    /// `[west, south, east, north]` when given.
    pub bbox: Option<Vec<f64>>,
    /// Its `properties`.
    pub properties: Map<String, Value>,
    /// Its assets, by key.
    pub assets: IndexMap<String, Value>,
    /// The item as the server sent it.
    pub document: Value,
}

impl Item {
    /// The item of a STAC document, its fields found through `mapper`.
    ///
    /// # Errors
    /// A document without an id.
    pub fn from_json(document: Value, mapper: &Mapper) -> Result<Self, String> {
        let Some(id) = mapper.get("id", &document).and_then(Value::as_str).map(str::to_owned) else {
            return Err("an item without an 'id'".to_owned());
        };
        let collection = mapper.get("collection", &document).and_then(Value::as_str).map(str::to_owned);
        let bbox = mapper
            .get("bbox", &document)
            .and_then(Value::as_array)
            .map(|b| b.iter().filter_map(Value::as_f64).collect::<Vec<_>>())
            .filter(|b| b.len() == 4 || b.len() == 6);
        let properties = mapper.get("properties", &document).and_then(Value::as_object).cloned().unwrap_or_default();
        let assets = mapper
            .get("assets", &document)
            .and_then(Value::as_object)
            .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok(Self { id, collection, bbox, properties, assets, document })
    }

    /// The item at `url` (an item's `self` link), read without opening its API.
    ///
    /// # Errors
    /// Unreachable (time-out 60 s), or not a STAC item.
    pub fn fetch(url: &str, mapper: &Mapper) -> crate::Result<Self> {
        let document = crate::client::Http::new(std::time::Duration::from_secs(60)).get_json(url)?;
        Self::from_json(document, mapper).map_err(|reason| crate::Error::Stac { url: url.to_owned(), reason })
    }

    /// The item's `self` link.
    pub fn self_href(&self) -> Option<&str> {
        self.document["links"].as_array()?.iter().find(|l| l["rel"] == "self")?["href"].as_str()
    }

    /// `start_datetime` (or `datetime`).
    pub fn start_datetime(&self) -> Option<&str> {
        self.text("start_datetime").or_else(|| self.text("datetime"))
    }

    /// `end_datetime` (or `datetime`).
    pub fn end_datetime(&self) -> Option<&str> {
        self.text("end_datetime").or_else(|| self.text("datetime"))
    }

    /// The variables the item names: `variables` or `variable_long_name` (DataPoint's), else
    /// the datacube extension's `cube:variables` keys.
    pub fn variables(&self) -> Vec<String> {
        let listed = ["variables", "variable_long_name"].iter().find_map(|key| self.properties.get(*key)?.as_array());
        if let Some(listed) = listed {
            return listed.iter().filter_map(Value::as_str).map(str::to_owned).collect();
        }
        self.properties
            .get("cube:variables")
            .and_then(Value::as_object)
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// `units` or `variable_units`.
    pub fn units(&self) -> Option<&Value> {
        self.properties.get("units").or_else(|| self.properties.get("variable_units"))
    }

    /// A property, else a top-level field of the item (DataPoint looks only at the latter:
    /// here a property is found too).
    pub fn attribute(&self, name: &str) -> Option<&Value> {
        self.properties
            .get(name)
            .or_else(|| self.document.get(name).filter(|_| !["properties", "assets"].contains(&name)))
    }

    fn text(&self, key: &str) -> Option<&str> {
        self.properties.get(key).and_then(Value::as_str)
    }
}

impl fmt::Display for Item {
    /// DataPoint's `info()`: the item, then each property.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "<DataPointItem: {}>", self.id)?;
        writeln!(f, " - collection: {}", self.collection.as_deref().unwrap_or("-"))?;
        writeln!(f, " - assets: {}", self.assets.len())?;
        writeln!(f, "Properties:")?;
        for (key, value) in &self.properties {
            let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            writeln!(f, " - {key}: {value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn mappers_follow_dotted_paths_and_fall_back_to_the_key() {
        let document = json!({"id": "a", "properties": {"model": {"assets": [{"href": "x"}]}}});
        let mapper = Mapper::new([("assets", "properties.model.assets"), ("href", "properties.model.assets.0.href")]);
        assert_eq!(mapper.get("href", &document), Some(&json!("x")));
        assert_eq!(mapper.get("id", &document), Some(&json!("a")));
        assert_eq!(mapper.get("missing", &document), None);
        assert_eq!(Mapper::new([("id", "properties.nowhere")]).get("id", &document), None);
    }

    #[test]
    fn items_read_their_fields_and_refuse_no_id() {
        let document = json!({
            "id": "tas", "collection": "c", "bbox": [-180, -90, 180, 90],
            "properties": {"start_datetime": "2000-01-01T00:00:00Z", "end_datetime": "2000-12-31T00:00:00Z",
                           "cube:variables": {"tas": {}, "time_bnds": {}}, "source_id": "X"},
            "assets": {"zstore": {"href": "h"}},
            "links": [{"rel": "self", "href": "http://s/items/tas"}],
        });
        let item = Item::from_json(document, &Mapper::default()).unwrap();
        assert_eq!(item.bbox.as_deref(), Some(&[-180.0, -90.0, 180.0, 90.0][..]));
        assert_eq!(item.variables(), ["tas", "time_bnds"]);
        assert_eq!(item.start_datetime(), Some("2000-01-01T00:00:00Z"));
        assert_eq!(item.attribute("source_id"), Some(&json!("X")));
        assert_eq!(item.attribute("collection"), Some(&json!("c")));
        assert_eq!(item.self_href(), Some("http://s/items/tas"));
        assert!(item.to_string().contains(" - source_id: X"));
        assert!(Item::from_json(json!({"properties": {}}), &Mapper::default()).is_err());
    }
}
