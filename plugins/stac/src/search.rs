//! STAC API item search: the parameters of `GET`/`POST /search` and whether an item matches.

use chrono::{DateTime, Utc};
use geo::Intersects;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Items per page unless `limit` says otherwise.
pub(crate) const DEFAULT_LIMIT: usize = 10;
/// The largest page.
pub(crate) const MAX_LIMIT: usize = 10_000;

/// A search, as `POST /search` sends it (`GET` parameters are converted to this).
#[derive(Debug, Default, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Search {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intersects: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datetime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collections: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Map<String, Value>>,
    /// Free text (the free-text extension): a string of comma-separated terms, or a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<Value>,
    /// Where the page starts: `next:{offset}`, from a `next` link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Accepted and ignored (results come in dataset order, with every field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sortby: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Value>,
}

fn list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

impl Search {
    /// The search of a `GET` query string (`bbox=a,b,c,d`, `ids=a,b`, `query` and
    /// `intersects` as JSON text).
    ///
    /// # Errors
    /// A message naming the bad parameter.
    pub(crate) fn from_query(query: &str) -> Result<Self, String> {
        const PARAMETERS: [&str; 11] = [
            "bbox",
            "intersects",
            "datetime",
            "ids",
            "collections",
            "limit",
            "query",
            "q",
            "token",
            "sortby",
            "fields",
        ];
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|err| format!("query string: {err}"))?;
        let mut search = Self::default();
        for (key, value) in pairs {
            // An empty value constrains nothing (`?ids=&bbox=`, as forms and generated
            // clients send them).
            if value.is_empty() && PARAMETERS.contains(&key.as_str()) {
                continue;
            }
            match key.as_str() {
                "bbox" => {
                    let numbers: Result<Vec<f64>, _> = list(&value).iter().map(|n| n.parse::<f64>()).collect();
                    search.bbox = Some(numbers.map_err(|_| format!("bbox '{value}' is not a list of numbers"))?);
                }
                "intersects" => {
                    search.intersects = Some(serde_json::from_str(&value).map_err(|err| format!("intersects: {err}"))?)
                }
                "datetime" => search.datetime = Some(value),
                "ids" => search.ids = Some(list(&value)),
                "collections" => search.collections = Some(list(&value)),
                "limit" => {
                    search.limit = Some(value.parse().map_err(|_| format!("limit '{value}' is not a whole number"))?)
                }
                "query" => search.query = Some(serde_json::from_str(&value).map_err(|err| format!("query: {err}"))?),
                "q" => search.q = Some(Value::String(value)),
                "token" => search.token = Some(value),
                "sortby" | "fields" => {}
                "filter" | "filter-lang" => return Err("CQL2 filter is not supported: use query".to_owned()),
                other => return Err(format!("unknown search parameter '{other}'")),
            }
        }
        Ok(search)
    }

    /// The search of a `POST` body.
    ///
    /// # Errors
    /// A message naming the bad field.
    pub(crate) fn from_body(body: &[u8]) -> Result<Self, String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        serde_json::from_slice(body).map_err(|err| format!("search body: {err}"))
    }

    /// Items per page.
    ///
    /// # Errors
    /// When `limit` is 0. A limit above [`MAX_LIMIT`] is lowered to it, as the STAC API
    /// asks.
    pub(crate) fn page_size(&self) -> Result<usize, String> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(0) => Err("limit must be at least 1".to_owned()),
            Some(limit) => Ok(limit.min(MAX_LIMIT)),
        }
    }

    /// The offset the page starts at.
    ///
    /// # Errors
    /// For a token this server did not hand out.
    pub(crate) fn offset(&self) -> Result<usize, String> {
        match &self.token {
            None => Ok(0),
            Some(token) => token
                .strip_prefix("next:")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("unknown paging token '{token}'")),
        }
    }

    /// The compiled filter.
    ///
    /// # Errors
    /// A message naming the bad parameter.
    pub(crate) fn filter(&self) -> Result<Filter, String> {
        let bbox = match self.bbox.as_deref() {
            None => None,
            Some(&[w, s, e, n]) | Some(&[w, s, _, e, n, _]) => {
                if s > n || !(-90.0..=90.0).contains(&s) || !(-90.0..=90.0).contains(&n) {
                    return Err("bbox: south must be ≤ north, both within ±90".to_owned());
                }
                Some([w, s, e, n])
            }
            Some(_) => return Err("bbox needs 4 (or 6) numbers: west, south, east, north".to_owned()),
        };
        if bbox.is_some() && self.intersects.is_some() {
            return Err("bbox and intersects cannot be used together".to_owned());
        }
        let intersects = match &self.intersects {
            None => None,
            Some(value) => {
                let geometry: geojson::Geometry =
                    serde_json::from_value(value.clone()).map_err(|err| format!("intersects: {err}"))?;
                Some(geo::Geometry::<f64>::try_from(geometry).map_err(|err| format!("intersects: {err}"))?)
            }
        };
        let datetime = self.datetime.as_deref().map(interval).transpose()?;
        if let Some(query) = &self.query {
            for (property, ops) in query {
                let Value::Object(ops) = ops else {
                    return Err(format!("query.{property} must be an object of operators"));
                };
                for op in ops.keys() {
                    if !OPERATORS.contains(&op.as_str()) {
                        return Err(format!("query.{property}: unknown operator '{op}' (one of {OPERATORS:?})"));
                    }
                }
            }
        }
        Ok(Filter {
            terms: self.q.as_ref().map(free_text).transpose()?.unwrap_or_default(),
            bbox,
            intersects,
            datetime,
            ids: self.ids.clone(),
            collections: self.collections.clone(),
            query: self.query.clone().unwrap_or_default(),
        })
    }
}

/// The terms of free text `q`: any term may match (commas separate terms, as the free-text
/// extension's basic search has them), and a term matches text holding each of its words.
fn free_text(q: &Value) -> Result<Vec<Vec<String>>, String> {
    let texts: Vec<&str> = match q {
        Value::String(text) => text.split(',').collect(),
        Value::Array(terms) => {
            terms.iter().map(|t| t.as_str().ok_or("q: a list of strings")).collect::<Result<_, _>>()?
        }
        _ => return Err("q must be a string or a list of strings".to_owned()),
    };
    Ok(texts
        .into_iter()
        .map(|term| term.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
        .filter(|words| !words.is_empty())
        .collect())
}

const OPERATORS: [&str; 10] = ["eq", "neq", "lt", "lte", "gt", "gte", "startsWith", "endsWith", "contains", "in"];

type Instant = DateTime<Utc>;

fn instant(text: &str) -> Result<Instant, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("datetime '{text}' is not RFC 3339"))
}

/// `a`, `a/b`, `../b`, `a/..` (open ends may also be empty).
fn interval(text: &str) -> Result<(Option<Instant>, Option<Instant>), String> {
    let open = |part: &str| if part.is_empty() || part == ".." { Ok(None) } else { instant(part).map(Some) };
    match text.split_once('/') {
        None => instant(text).map(|t| (Some(t), Some(t))),
        Some((start, end)) => match (open(start)?, open(end)?) {
            (None, None) => Err(format!("datetime '{text}' is open at both ends")),
            (Some(s), Some(e)) if s > e => Err(format!("datetime '{text}' ends before it starts")),
            bounds => Ok(bounds),
        },
    }
}

/// A search ready to test items.
#[derive(Debug)]
pub(crate) struct Filter {
    /// Free-text terms, lower case: any of them, each with all of its words.
    terms: Vec<Vec<String>>,
    bbox: Option<[f64; 4]>,
    intersects: Option<geo::Geometry<f64>>,
    datetime: Option<(Option<Instant>, Option<Instant>)>,
    ids: Option<Vec<String>>,
    collections: Option<Vec<String>>,
    query: Map<String, Value>,
}

/// The longitude ranges of a bbox (two when it crosses the antimeridian).
fn spans(west: f64, east: f64) -> Vec<[f64; 2]> {
    if west <= east {
        vec![[west, east]]
    } else {
        vec![[west, 180.0], [-180.0, east]]
    }
}

fn boxes_meet(a: [f64; 4], b: [f64; 4]) -> bool {
    let lat = a[1] <= b[3] && b[1] <= a[3];
    lat && spans(a[0], a[2]).iter().any(|x| spans(b[0], b[2]).iter().any(|y| x[0] <= y[1] && y[0] <= x[1]))
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Whether `value` satisfies `op` against `operand`; a list value satisfies `eq`, `in`,
/// `startsWith`, ... when one of its elements does (`variables = tas`), and `neq` when none
/// equals the operand.
fn satisfies(value: &Value, op: &str, operand: &Value) -> bool {
    if let Value::Array(elements) = value {
        return if op == "neq" {
            !elements.iter().any(|e| satisfies(e, "eq", operand))
        } else {
            elements.iter().any(|e| satisfies(e, op, operand))
        };
    }
    use std::cmp::Ordering::{Equal, Greater, Less};
    let text = |f: fn(&str, &str) -> bool| matches!((value, operand), (Value::String(v), Value::String(o)) if f(v, o));
    match op {
        "eq" => compare(value, operand) == Some(Equal) || value == operand,
        "neq" => !(compare(value, operand) == Some(Equal) || value == operand),
        "lt" => compare(value, operand) == Some(Less),
        "lte" => matches!(compare(value, operand), Some(Less | Equal)),
        "gt" => compare(value, operand) == Some(Greater),
        "gte" => matches!(compare(value, operand), Some(Greater | Equal)),
        "startsWith" => text(|v, o| v.starts_with(o)),
        "endsWith" => text(|v, o| v.ends_with(o)),
        "contains" => text(|v, o| v.contains(o)),
        "in" => operand.as_array().is_some_and(|options| options.iter().any(|o| satisfies(value, "eq", o))),
        _ => false,
    }
}

impl Filter {
    /// Whether the search has free text, which [`Filter::matches_text`] tests.
    pub(crate) fn has_text(&self) -> bool {
        !self.terms.is_empty()
    }

    /// Whether `text` (a dataset's searchable text, lower case) matches the free text.
    pub(crate) fn matches_text(&self, text: &str) -> bool {
        self.terms.is_empty() || self.terms.iter().any(|words| words.iter().all(|word| text.contains(word.as_str())))
    }

    /// Whether collection `id` may hold matches.
    pub(crate) fn wants_collection(&self, id: &str) -> bool {
        self.collections.as_ref().is_none_or(|wanted| wanted.iter().any(|c| c == id))
    }

    /// Whether `item` (STAC Item JSON) matches.
    pub(crate) fn matches(&self, item: &Value) -> bool {
        let id = item["id"].as_str().unwrap_or_default();
        if self.ids.as_ref().is_some_and(|ids| !ids.iter().any(|wanted| wanted == id)) {
            return false;
        }
        if !self.wants_collection(item["collection"].as_str().unwrap_or_default()) {
            return false;
        }
        let item_bbox = item["bbox"]
            .as_array()
            .and_then(|b| <[f64; 4]>::try_from(b.iter().filter_map(Value::as_f64).collect::<Vec<_>>()).ok());
        if let (Some(wanted), Some(bbox)) = (self.bbox, item_bbox) {
            if !boxes_meet(wanted, bbox) {
                return false;
            }
        }
        if let Some(wanted) = &self.intersects {
            let geometry = serde_json::from_value::<geojson::Geometry>(item["geometry"].clone())
                .ok()
                .and_then(|g| geo::Geometry::<f64>::try_from(g).ok());
            if !geometry.is_some_and(|g| g.intersects(wanted)) {
                return false;
            }
        }
        if let Some((from, to)) = self.datetime {
            let properties = &item["properties"];
            let time = |key: &str| properties[key].as_str().and_then(|t| instant(t).ok());
            let (start, end) = match time("datetime") {
                Some(t) => (Some(t), Some(t)),
                None => (time("start_datetime"), time("end_datetime")),
            };
            let after_start = match (to, start) {
                (Some(to), Some(start)) => start <= to,
                _ => true,
            };
            let before_end = match (from, end) {
                (Some(from), Some(end)) => end >= from,
                _ => true,
            };
            if !(after_start && before_end) {
                return false;
            }
        }
        self.query.iter().all(|(property, ops)| {
            let value = &item["properties"][property];
            !value.is_null()
                && ops.as_object().is_some_and(|ops| ops.iter().all(|(op, operand)| satisfies(value, op, operand)))
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn item() -> Value {
        json!({
            "id": "tas-ssp585", "collection": "all",
            "bbox": [170.0, -10.0, -170.0, 10.0],
            "geometry": {"type": "MultiPolygon", "coordinates": [
                [[[170.0, -10.0], [180.0, -10.0], [180.0, 10.0], [170.0, 10.0], [170.0, -10.0]]],
                [[[-180.0, -10.0], [-170.0, -10.0], [-170.0, 10.0], [-180.0, 10.0], [-180.0, -10.0]]]]},
            "properties": {"datetime": null, "start_datetime": "2015-01-16T12:00:00Z", "end_datetime": "2015-12-16T12:00:00Z",
                           "variables": ["tas", "pr"], "experiment_id": "ssp585", "nominal_resolution": 100}
        })
    }

    fn matches(search: Value) -> bool {
        serde_json::from_value::<Search>(search).unwrap().filter().unwrap().matches(&item())
    }

    #[test]
    fn bbox_across_the_antimeridian() {
        assert!(matches(json!({"bbox": [-175.0, 0.0, -172.0, 5.0]})));
        assert!(matches(json!({"bbox": [175.0, 0.0, -175.0, 5.0]})));
        assert!(!matches(json!({"bbox": [0.0, 0.0, 10.0, 5.0]})));
        assert!(!matches(json!({"bbox": [-175.0, 20.0, -172.0, 30.0]})));
    }

    #[test]
    fn intersecting_polygons() {
        let polygon = |w: f64, e: f64| json!({"type": "Polygon", "coordinates": [[[w, 0.0], [e, 0.0], [e, 5.0], [w, 5.0], [w, 0.0]]]});
        assert!(matches(json!({"intersects": polygon(-172.0, -160.0)})));
        assert!(!matches(json!({"intersects": polygon(0.0, 20.0)})));
    }

    #[test]
    fn datetime_intervals_overlap() {
        assert!(matches(json!({"datetime": "2015-06-01T00:00:00Z"})));
        assert!(matches(json!({"datetime": "2010-01-01T00:00:00Z/2015-01-20T00:00:00Z"})));
        assert!(matches(json!({"datetime": "../2015-02-01T00:00:00Z"})));
        assert!(matches(json!({"datetime": "2015-12-01T00:00:00Z/.."})));
        assert!(!matches(json!({"datetime": "2016-01-01T00:00:00Z/.."})));
        assert!(!matches(json!({"datetime": "2000-01-01T00:00:00Z/2014-12-31T00:00:00Z"})));
        for open in ["/", "../..", "/..", "../"] {
            assert!(serde_json::from_value::<Search>(json!({"datetime": open})).unwrap().filter().is_err(), "{open}");
        }
        let bad = serde_json::from_value::<Search>(json!({"datetime": "2015"})).unwrap().filter().unwrap_err();
        assert!(bad.contains("RFC 3339"), "{bad}");
    }

    #[test]
    fn query_operators() {
        assert!(matches(json!({"query": {"variables": {"eq": "tas"}}})));
        assert!(!matches(json!({"query": {"variables": {"eq": "clt"}}})));
        assert!(matches(json!({"query": {"variables": {"neq": "clt"}}})));
        assert!(matches(json!({"query": {"experiment_id": {"in": ["historical", "ssp585"]}}})));
        assert!(matches(json!({"query": {"experiment_id": {"startsWith": "ssp"}}})));
        assert!(matches(json!({"query": {"nominal_resolution": {"gte": 100, "lt": 250}}})));
        assert!(!matches(json!({"query": {"nominal_resolution": {"gt": 100}}})));
        assert!(!matches(json!({"query": {"missing": {"eq": 1}}})));
        let bad = serde_json::from_value::<Search>(json!({"query": {"a": {"like": 1}}})).unwrap().filter().unwrap_err();
        assert!(bad.contains("unknown operator 'like'"), "{bad}");
    }

    #[test]
    fn get_parameters() {
        let search = Search::from_query("bbox=-175,0,-172,5&ids=tas-ssp585,x&limit=2&query=%7B%22variables%22%3A%7B%22eq%22%3A%22pr%22%7D%7D&token=next:2").unwrap();
        assert_eq!(search.page_size(), Ok(2));
        assert_eq!(search.offset(), Ok(2));
        assert!(search.filter().unwrap().matches(&item()));
        assert!(Search::from_query("bbox=1,2,x,4").unwrap_err().contains("bbox"));
        assert!(Search::from_query("colections=a").unwrap_err().contains("colections"));
        assert!(Search::from_query("filter=a%3D1").unwrap_err().contains("CQL2"));
        assert!(Search::from_query("limit=0").unwrap().page_size().is_err());
        assert_eq!(Search::from_query("limit=99999999").unwrap().page_size(), Ok(MAX_LIMIT));
        let empty = Search::from_query("bbox=&intersects=&ids=&limit=").unwrap();
        assert!(
            empty.bbox.is_none()
                && empty.intersects.is_none()
                && empty.ids.is_none()
                && empty.page_size() == Ok(DEFAULT_LIMIT)
        );
        assert!(Search::from_query("unknown=").is_err());
        let both = Search::from_query(
            "bbox=0,0,1,1&intersects=%7B%22type%22%3A%22Point%22%2C%22coordinates%22%3A%5B0%2C0%5D%7D",
        )
        .unwrap();
        assert!(both.filter().unwrap_err().contains("together"));
        assert!(Search::from_query("token=abc").unwrap().offset().is_err());
    }

    #[test]
    fn free_text_terms_are_alternatives_of_words_all_present() {
        let text = "tos_pacific\nsea surface temperature\ntos\nsea_surface_temperature\ndegc";
        let matches = |query: &str| Search::from_query(query).unwrap().filter().unwrap().matches_text(text);
        assert!(matches("q=SEA_SURFACE_TEMPERATURE"));
        assert!(matches("q=surface+temperature"), "words in any order");
        assert!(!matches("q=surface+precipitation"), "every word of a term");
        assert!(matches("q=precipitation,pacific"), "any term");
        assert!(matches("q=+,+"), "blank terms constrain nothing");
        let listed: Search = serde_json::from_value(json!({"q": ["rain", "tos"]})).unwrap();
        assert!(listed.filter().unwrap().matches_text(text));
        let wrong: Search = serde_json::from_value(json!({"q": 3})).unwrap();
        assert!(wrong.filter().unwrap_err().contains("q must be"));
    }

    /// Fuzz target (`cargo bolero test -p cloudify-plugin-stac fuzz_search_parameters`): any
    /// query string or POST body is a search or a 400 message, never a panic.
    #[test]
    fn fuzz_search_parameters() {
        let item = json!({"type": "Feature", "id": "x", "bbox": [-10.0, -5.0, 10.0, 5.0], "collection": "c",
            "geometry": {"type": "Polygon", "coordinates": [[[-10.0, -5.0], [10.0, -5.0], [10.0, 5.0], [-10.0, 5.0], [-10.0, -5.0]]]},
            "properties": {"datetime": null, "start_datetime": "2000-01-01T00:00:00Z", "end_datetime": "2001-01-01T00:00:00Z", "variables": ["tas"]}});
        bolero::check!().with_type::<(String, Vec<u8>)>().for_each(|(query, body)| {
            for search in [Search::from_query(query), Search::from_body(body)].into_iter().flatten() {
                let _ = (search.page_size(), search.offset());
                if let Ok(filter) = search.filter() {
                    let _ = (filter.matches(&item), filter.matches_text("x tas"));
                }
            }
        });
    }
}
