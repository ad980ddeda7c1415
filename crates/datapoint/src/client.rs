//! A STAC API: its landing page, collections and item search, paged as the API's `next`
//! links say (GET, or POST with a body to merge).

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::{item::Item, Error, Mapper, Result};

/// A STAC answer larger than this is refused (a page of items is a few MB at most).
const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// Pages followed in one search or listing, at most: a server whose `next` links never end
/// does not hold the client forever.
const MAX_PAGES: usize = 10_000;

/// A blocking HTTP client with time-outs.
#[derive(Clone)]
pub(crate) struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub(crate) fn new(timeout: Duration) -> Self {
        let agent =
            ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build().into();
        Self { agent }
    }

    fn read(url: &str, answer: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Value> {
        let mut answer = answer.map_err(|e| Error::Http { url: url.to_owned(), reason: e.to_string() })?;
        let status = answer.status().as_u16();
        let body = answer
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec()
            .map_err(|e| Error::Http { url: url.to_owned(), reason: e.to_string() })?;
        if !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(Error::Status { url: url.to_owned(), status, body: text });
        }
        serde_json::from_slice(&body).map_err(|e| Error::Stac { url: url.to_owned(), reason: format!("not JSON: {e}") })
    }

    pub(crate) fn get_json(&self, url: &str) -> Result<Value> {
        Self::read(url, self.agent.get(url).header("accept", "application/json").call())
    }

    fn post_json(&self, url: &str, body: &Value) -> Result<Value> {
        let request =
            self.agent.post(url).header("content-type", "application/json").header("accept", "application/json");
        Self::read(url, request.send(body.to_string().as_bytes()))
    }

    /// The status of a HEAD request (`None`: no answer).
    pub(crate) fn head(&self, url: &str) -> Option<u16> {
        self.agent.head(url).call().ok().map(|answer| answer.status().as_u16())
    }
}

/// A STAC API, opened at its landing page.
#[derive(Clone)]
pub struct Client {
    url: String,
    landing: Value,
    search: SearchEndpoint,
    http: Http,
    mapper: Mapper,
}

/// Where and how the API searches.
#[derive(Debug, Clone)]
enum SearchEndpoint {
    Post(String),
    Get(String),
}

/// One collection of a STAC API.
#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    /// Its id, as searches name it.
    pub id: String,
    /// Its title (or empty).
    pub title: String,
    /// Its description (or empty).
    pub description: String,
}

/// The links of `document` with relation `rel`.
fn link<'d>(document: &'d Value, rel: &str) -> impl Iterator<Item = &'d Value> {
    let rel = rel.to_owned();
    document["links"].as_array().into_iter().flatten().filter(move |l| l["rel"] == rel.as_str())
}

impl Client {
    /// Reads the landing page at `url` (time-out 60 s per request).
    ///
    /// # Errors
    /// Unreachable, not JSON, or not a STAC API with item search (no `rel=search` link).
    pub fn open(url: &str) -> Result<Self> {
        Self::open_with(url, Duration::from_secs(60))
    }

    /// [`Client::open`] with each request's time-out.
    ///
    /// # Errors
    /// As [`Client::open`].
    pub fn open_with(url: &str, timeout: Duration) -> Result<Self> {
        let url = url.trim_end_matches('/').to_owned();
        let http = Http::new(timeout);
        let landing = http.get_json(&url)?;
        let href = |l: &Value| l["href"].as_str().map(str::to_owned);
        let post =
            link(&landing, "search").find(|l| l["method"].as_str().is_some_and(|m| m.eq_ignore_ascii_case("POST")));
        let search = match post.and_then(href) {
            Some(href) => SearchEndpoint::Post(href),
            None => match link(&landing, "search").find_map(href) {
                Some(href) => SearchEndpoint::Get(href),
                None => {
                    let reason = "no rel=search link: not a STAC API with item search".to_owned();
                    return Err(Error::Stac { url, reason });
                }
            },
        };
        Ok(Self { url, landing, search, http, mapper: Mapper::default() })
    }

    /// Item fields read elsewhere than STAC puts them (DataPoint's item mappings: `id`,
    /// `properties`, `assets`, `collection`, `bbox`).
    #[must_use]
    pub fn with_mapper(mut self, mapper: Mapper) -> Self {
        self.mapper = mapper;
        self
    }

    /// The landing page's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The landing page.
    pub fn landing(&self) -> &Value {
        &self.landing
    }

    /// Every collection of the API (`/collections`, paged).
    ///
    /// # Errors
    /// Unreachable, or an answer without `collections`.
    pub fn collections(&self) -> Result<Vec<Collection>> {
        let mut url = link(&self.landing, "data")
            .find_map(|l| l["href"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{}/collections", self.url));
        let mut found = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = self.http.get_json(&url)?;
            let Some(collections) = page["collections"].as_array() else {
                return Err(Error::Stac { url, reason: "no 'collections' list".to_owned() });
            };
            let text = |c: &Value, key: &str| c[key].as_str().unwrap_or_default().to_owned();
            found.extend(collections.iter().filter_map(|c| {
                Some(Collection {
                    id: c["id"].as_str()?.to_owned(),
                    title: text(c, "title"),
                    description: text(c, "description"),
                })
            }));
            let next = link(&page, "next").find_map(|l| l["href"].as_str().map(str::to_owned));
            match next {
                Some(next) if next != url => url = next,
                _ => break,
            }
        }
        Ok(found)
    }

    /// The items `search` finds, fetched page by page as they are iterated.
    ///
    /// # Errors
    /// A search that cannot be expressed (a `query` term without an operator); requests fail
    /// as the items are iterated.
    pub fn search(&self, search: &Search) -> Result<Items<'_>> {
        let body = search.body()?;
        let first = match &self.search {
            SearchEndpoint::Post(url) => Page::Post(url.clone(), body),
            SearchEndpoint::Get(url) => Page::Get(format!("{url}?{}", query_string(&body))),
        };
        Ok(Items { client: self, next: Some(first), page: Vec::new(), yielded: 0, pages: 0, max: search.max_items })
    }
}

/// A request for a page of results.
#[derive(Debug, Clone, PartialEq)]
enum Page {
    Get(String),
    Post(String, Value),
}

/// Search parameters as a GET query string (arrays comma-separated, objects as JSON).
fn query_string(body: &Value) -> String {
    let Some(fields) = body.as_object() else { return String::new() };
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let value = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            items.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned)).collect::<Vec<_>>().join(",")
        }
        other => other.to_string(),
    };
    fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(&value(v)))).collect::<Vec<_>>().join("&")
}

/// The items of a search, fetched as iterated.
pub struct Items<'c> {
    client: &'c Client,
    next: Option<Page>,
    page: Vec<Value>,
    yielded: u64,
    pages: usize,
    max: Option<u64>,
}

impl Items<'_> {
    fn fetch(&mut self) -> Result<()> {
        let Some(request) = self.next.take() else { return Ok(()) };
        self.pages += 1;
        let http = &self.client.http;
        let (url, answer) = match &request {
            Page::Get(url) => (url.clone(), http.get_json(url)?),
            Page::Post(url, body) => (url.clone(), http.post_json(url, body)?),
        };
        let Some(features) = answer["features"].as_array() else {
            return Err(Error::Stac { url, reason: "no 'features' list".to_owned() });
        };
        self.page = features.iter().rev().cloned().collect();
        let next = link(&answer, "next").next().and_then(|l| {
            let href = l["href"].as_str()?.to_owned();
            if l["method"].as_str().is_some_and(|m| m.eq_ignore_ascii_case("POST")) {
                let body = match (&request, l["merge"].as_bool().unwrap_or(false)) {
                    (Page::Post(_, previous), true) => merged(previous, &l["body"]),
                    _ => l["body"].clone(),
                };
                Some(Page::Post(href, body))
            } else {
                Some(Page::Get(href))
            }
        });
        // A page with nothing on it, or a `next` naming the same request, ends the search.
        self.next = next.filter(|n| *n != request && !features.is_empty() && self.pages < MAX_PAGES);
        Ok(())
    }
}

/// `base` with the fields of `extra` set over it.
fn merged(base: &Value, extra: &Value) -> Value {
    let mut out = base.clone();
    if let (Some(out), Some(extra)) = (out.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

impl Iterator for Items<'_> {
    type Item = Result<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.max.is_some_and(|max| self.yielded >= max) {
            return None;
        }
        if self.page.is_empty() {
            if let Err(err) = self.fetch() {
                self.next = None;
                return Some(Err(err));
            }
        }
        let document = self.page.pop()?;
        self.yielded += 1;
        let url = self.client.url.clone();
        Some(Item::from_json(document, &self.client.mapper).map_err(|reason| Error::Stac { url, reason }))
    }
}

/// What to search for, as pystac-client's `Client.search` takes it.
#[derive(Debug, Clone, Default)]
pub struct Search {
    collections: Vec<String>,
    ids: Vec<String>,
    bbox: Option<[f64; 4]>,
    intersects: Option<Value>,
    datetime: Option<String>,
    query: Vec<String>,
    filter: Option<Value>,
    limit: Option<u64>,
    max_items: Option<u64>,
}

impl Search {
    /// Everything (narrow it down with the other methods).
    pub fn new() -> Self {
        Self::default()
    }

    /// Only items of these collections.
    #[must_use]
    pub fn collections<S: Into<String>>(mut self, ids: impl IntoIterator<Item = S>) -> Self {
        self.collections = ids.into_iter().map(Into::into).collect();
        self
    }

    /// Only these items.
    #[must_use]
    pub fn ids<S: Into<String>>(mut self, ids: impl IntoIterator<Item = S>) -> Self {
        self.ids = ids.into_iter().map(Into::into).collect();
        self
    }

    /// Only items intersecting `[west, south, east, north]` (degrees).
    #[must_use]
    pub fn bbox(mut self, bbox: [f64; 4]) -> Self {
        self.bbox = Some(bbox);
        self
    }

    /// Only items intersecting a GeoJSON geometry.
    #[must_use]
    pub fn intersects(mut self, geometry: Value) -> Self {
        self.intersects = Some(geometry);
        self
    }

    /// Only items in a time: an RFC 3339 instant or `start/end` (`..` an open end).
    #[must_use]
    pub fn datetime(mut self, datetime: impl Into<String>) -> Self {
        self.datetime = Some(datetime.into());
        self
    }

    /// `query` terms as pystac-client takes them: `key=value`, `key>=value`, ... (operators
    /// `>=`, `<=`, `<>`, `=`, `>`, `<`).
    #[must_use]
    pub fn query<S: Into<String>>(mut self, terms: impl IntoIterator<Item = S>) -> Self {
        self.query = terms.into_iter().map(Into::into).collect();
        self
    }

    /// A CQL2 JSON filter.
    #[must_use]
    pub fn filter(mut self, filter: Value) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Items per page asked of the server.
    #[must_use]
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Items yielded at most.
    #[must_use]
    pub fn max_items(mut self, max: u64) -> Self {
        self.max_items = Some(max);
        self
    }

    /// The bbox searched for.
    pub fn bbox_value(&self) -> Option<[f64; 4]> {
        self.bbox
    }

    /// The time searched for.
    pub fn datetime_value(&self) -> Option<&str> {
        self.datetime.as_deref()
    }

    /// The `query` terms.
    pub fn query_terms(&self) -> &[String] {
        &self.query
    }

    /// The body of a POST `/search`.
    ///
    /// # Errors
    /// [`Error::Selection`] for a `query` term without an operator.
    pub fn body(&self) -> Result<Value> {
        let mut body = Map::new();
        if !self.collections.is_empty() {
            body.insert("collections".into(), json!(self.collections));
        }
        if !self.ids.is_empty() {
            body.insert("ids".into(), json!(self.ids));
        }
        if let Some(bbox) = self.bbox {
            body.insert("bbox".into(), json!(bbox));
        }
        if let Some(geometry) = &self.intersects {
            body.insert("intersects".into(), geometry.clone());
        }
        if let Some(datetime) = &self.datetime {
            body.insert("datetime".into(), json!(datetime));
        }
        if !self.query.is_empty() {
            body.insert("query".into(), Value::Object(query_object(&self.query)?));
        }
        if let Some(filter) = &self.filter {
            body.insert("filter".into(), filter.clone());
            body.insert("filter-lang".into(), json!("cql2-json"));
        }
        if let Some(limit) = self.limit {
            body.insert("limit".into(), json!(limit));
        }
        Ok(Value::Object(body))
    }
}

/// pystac-client's `query` terms as the STAC query extension's object:
/// `["a=1", "b>=2"]` → `{"a": {"eq": 1}, "b": {"gte": 2}}`; numbers stay numbers.
fn query_object(terms: &[String]) -> Result<Map<String, Value>> {
    const OPERATORS: [(&str, &str); 6] =
        [(">=", "gte"), ("<=", "lte"), ("<>", "neq"), ("=", "eq"), (">", "gt"), ("<", "lt")];
    let mut query = Map::new();
    for term in terms {
        let found = OPERATORS
            .iter()
            .filter_map(|&(symbol, name)| term.find(symbol).map(|at| (at, symbol, name)))
            // The first operator in the term; at one place, the longer (`>=` before `>`).
            .min_by_key(|&(at, symbol, _)| (at, std::cmp::Reverse(symbol.len())));
        let Some((at, symbol, name)) = found else {
            return Err(Error::Selection(format!("query term '{term}' has no operator (=, <>, <, <=, >, >=)")));
        };
        let (key, value) = (term[..at].trim(), term[at + symbol.len()..].trim());
        let value = value.parse::<f64>().ok().filter(|v| v.is_finite()).map_or_else(|| json!(value), |v| json!(v));
        let entry = query.entry(key.to_owned()).or_insert_with(|| json!({}));
        entry[name] = value;
    }
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_terms_read_as_pystac_client_reads_them() {
        let terms = ["cmip6:experiment_id=ssp585", "year>=2000", "year<2010", "flag<>x"].map(String::from);
        let query = query_object(&terms).unwrap();
        assert_eq!(
            Value::Object(query),
            json!({"cmip6:experiment_id": {"eq": "ssp585"}, "year": {"gte": 2000.0, "lt": 2010.0}, "flag": {"neq": "x"}})
        );
        let err = query_object(&["variables".to_owned()]).unwrap_err().to_string();
        assert!(err.contains("no operator"), "{err}");
    }

    #[test]
    fn search_bodies_hold_what_was_asked() {
        let search = Search::new().collections(["c"]).bbox([-10.0, 40.0, 10.0, 60.0]).datetime("2000/2001").limit(5);
        assert_eq!(
            search.body().unwrap(),
            json!({"collections": ["c"], "bbox": [-10.0, 40.0, 10.0, 60.0], "datetime": "2000/2001", "limit": 5})
        );
        let get = query_string(&search.body().unwrap());
        assert_eq!(get, "collections=c&bbox=-10.0%2C40.0%2C10.0%2C60.0&datetime=2000%2F2001&limit=5");
    }

    /// A STAC API on 127.0.0.1 answering every request with `answer(path)`, for as many
    /// requests as the test makes.
    fn hostile_api(answer: fn(&str, &str) -> String) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let own = base.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = std::io::BufReader::new(&stream);
                let mut line = String::new();
                let _ = std::io::BufRead::read_line(&mut reader, &mut line);
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let mut header = String::new();
                let mut length = 0;
                while std::io::BufRead::read_line(&mut reader, &mut header).is_ok_and(|n| n > 2) {
                    if let Some(n) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = n.trim().parse().unwrap_or(0);
                    }
                    header.clear();
                }
                let mut body = vec![0; length];
                let _ = std::io::Read::read_exact(&mut reader, &mut body);
                let text = answer(&own, &path);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = std::io::Write::write_all(&mut &stream, reply.as_bytes());
            }
        });
        base
    }

    fn landing(base: &str) -> String {
        json!({"links": [{"rel": "search", "href": format!("{base}/search"), "method": "POST"}]}).to_string()
    }

    #[test]
    fn a_next_link_that_never_ends_ends_the_search() {
        // Every page names itself as the next one, with the same body.
        let base = hostile_api(|base, path| {
            match path {
            "/" => landing(base),
            _ => json!({"features": [{"id": "a"}], "links": [{"rel": "next", "href": format!("{base}/search"), "method": "POST", "body": {}}]})
                .to_string(),
        }
        });
        let client = Client::open(&base).unwrap();
        let ids: Vec<String> = client.search(&Search::new()).unwrap().map(|item| item.unwrap().id).collect();
        assert_eq!(ids, ["a"], "a next page asked exactly as the last one is not asked");
    }

    #[test]
    fn answers_that_are_not_stac_are_errors() {
        let base = hostile_api(|base, path| match path {
            "/" => landing(base),
            _ => json!({"features": [{"no": "id"}]}).to_string(),
        });
        let client = Client::open(&base).unwrap();
        let first = client.search(&Search::new()).unwrap().next().unwrap();
        assert!(first.unwrap_err().to_string().contains("without an 'id'"));
        let not_json = hostile_api(|_, _| "<html>".to_owned());
        assert!(Client::open(&not_json).err().unwrap().to_string().contains("not JSON"));
        let no_search = hostile_api(|_, _| "{}".to_owned());
        assert!(Client::open(&no_search).err().unwrap().to_string().contains("no rel=search"));
    }

    #[test]
    fn next_bodies_merge_when_asked() {
        assert_eq!(merged(&json!({"a": 1, "token": "x"}), &json!({"token": "y"})), json!({"a": 1, "token": "y"}));
    }
}
