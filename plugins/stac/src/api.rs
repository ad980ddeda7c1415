//! The handlers: one item per dataset, the collection of all, and the STAC API.

use std::{sync::Arc, time::Duration};

use cloudify_sdk::{meta::DatasetMeta, ChunkRef, Error, Host, HostExt, Request, Response};
use futures::{stream, StreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::{json, Map, Value};

use crate::{
    config::{AssetTemplate, Config},
    facts::{self, Facts},
    item::{self, ItemContext, Links, STAC_VERSION},
    search::Search,
};

/// Conformance classes of the STAC API (1.0.0) this plugin implements.
const CONFORMANCE: [&str; 9] = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "https://api.stacspec.org/v1.0.0-rc.1/item-search#free-text",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
];

/// How long the extents read from a dataset's coordinates, and the items made from them,
/// are kept (they are made again sooner when the data changes, see [`StacService::item`]).
const ITEM_TTL: Duration = Duration::from_secs(60);

/// Datasets described at once when many items are built.
const PARALLEL_DATASETS: usize = 8;

/// Which links the items of a document get.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Tree {
    /// `/datasets/{id}/stac` under `/stac-collection-all.json`.
    Standalone,
    /// `/stac/collections/{cid}/items/{id}` under `/stac`.
    Api,
}

/// The plugin's state: its configuration, and the extents and items already made (a search
/// tests every item: building them anew each time cost 40 ms per search of 1,000 datasets).
pub(crate) struct StacService {
    config: Config,
    facts: moka::sync::Cache<String, (Option<i64>, Arc<Facts>)>,
    /// Items by dataset and tree, built with [`BASE_PLACEHOLDER`] for the base URL.
    items: moka::sync::Cache<(String, Tree), (Option<i64>, Arc<Value>)>,
    /// What free text searches in, by dataset ([`searchable_text`]).
    texts: moka::sync::Cache<String, Arc<str>>,
}

/// What free text (`q`) searches in, lower case: the id, the global attributes, and each
/// variable's name and text attributes (`long_name`, `standard_name`, `units`, ...).
fn searchable_text(meta: &cloudify_sdk::meta::DatasetMeta) -> String {
    let mut text = meta.id.clone();
    let strings = |attrs: &serde_json::Map<String, Value>| {
        attrs.values().filter_map(Value::as_str).map(str::to_owned).collect::<Vec<_>>().join("\n")
    };
    text.push('\n');
    text.push_str(&strings(&meta.attributes));
    for (name, var) in &meta.variables {
        text.push('\n');
        text.push_str(name);
        text.push('\n');
        text.push_str(&strings(&var.attributes));
    }
    text.to_lowercase()
}

fn geojson(status: u16, value: &Value) -> Response {
    Response::json(status, value).set_header("content-type", "application/geo+json")
}

/// Characters a dataset id cannot carry as they are in a URL path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

/// `text` as one URL path segment.
fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// Replaces `{base_url}` and `{id}` in every string of `value` (the id URL-encoded in `href`s).
fn fill(value: &Value, base: &str, id: &str, in_href: bool) -> Value {
    match value {
        Value::String(text) => {
            let id = if in_href { segment(id) } else { id.to_owned() };
            Value::String(text.replace("{base_url}", base).replace("{id}", &id))
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| fill(v, base, id, in_href)).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), fill(v, base, id, k == "href"))).collect())
        }
        other => other.clone(),
    }
}

/// What items are built with in place of the base URL: cached items hold it, and each answer
/// fills in its own base, so the cache does not grow with the base URLs clients reach.
const BASE_PLACEHOLDER: &str = "\u{0}cloudify-base\u{0}";

/// `item` with the base URL placeholder replaced by `base`.
fn rebase(item: &Value, base: &str) -> Value {
    match item {
        Value::String(text) if text.contains(BASE_PLACEHOLDER) => Value::String(text.replace(BASE_PLACEHOLDER, base)),
        Value::Array(values) => Value::Array(values.iter().map(|v| rebase(v, base)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), rebase(v, base))).collect()),
        other => other.clone(),
    }
}

/// Whether every chunk of the dataset is (probably) a stored byte range: the first chunk of
/// each variable is one, as `/kerchunk` needs.
async fn stored_chunks(host: &Host, meta: &DatasetMeta) -> bool {
    for (name, var) in &meta.variables {
        if var.shape.contains(&0) {
            continue;
        }
        let origin = vec![0; var.shape.len()];
        match host.chunk_ref(&meta.id, name, &origin).await {
            Ok(ChunkRef::Computed) | Err(_) => return false,
            Ok(_) => {}
        }
    }
    true
}

/// Whether the dataset is read from files, each of them NetCDF (classic or HDF5 magic).
async fn netcdf_files(host: &Host, id: &str) -> bool {
    let Ok(files) = host.dataset_files(id) else { return false };
    for file in &files {
        match host.read_file(id, file, 0, 8).await {
            Ok(head) if head.starts_with(b"CDF") || head.starts_with(b"\x89HDF\r\n\x1a\n") => {}
            _ => return false,
        }
    }
    !files.is_empty()
}

/// Bytes of items kept (their JSON length), whatever the number of datasets.
const ITEM_CACHE_BYTES: u64 = 128 << 20;

impl StacService {
    pub(crate) fn new(config: Config) -> Self {
        let facts = moka::sync::Cache::builder().max_capacity(100_000).time_to_live(ITEM_TTL).build();
        let items = moka::sync::Cache::builder()
            .weigher(|_key, (_, item): &(Option<i64>, Arc<Value>)| {
                u32::try_from(item.to_string().len()).unwrap_or(u32::MAX)
            })
            .max_capacity(ITEM_CACHE_BYTES)
            .time_to_live(ITEM_TTL)
            .build();
        let texts = moka::sync::Cache::builder()
            .weigher(|_key, text: &Arc<str>| u32::try_from(text.len()).unwrap_or(u32::MAX))
            .max_capacity(ITEM_CACHE_BYTES)
            .time_to_live(ITEM_TTL)
            .build();
        Self { config, facts, items, texts }
    }

    fn base_url(&self, req: &Request) -> String {
        self.config.public_url.clone().unwrap_or_else(|| req.base_url())
    }

    fn collection_id(&self) -> &str {
        &self.config.profile.collection.id
    }

    /// The extents of `meta`, read once per change of the data.
    async fn facts(&self, host: &Host, meta: &DatasetMeta) -> Arc<Facts> {
        if let Some((modified, facts)) = self.facts.get(&meta.id) {
            if modified == meta.last_modified {
                return facts;
            }
        }
        let mut facts = facts::gather(host, meta).await;
        facts.stored_chunks = stored_chunks(host, meta).await;
        facts.netcdf_files = facts.stored_chunks && netcdf_files(host, &meta.id).await;
        let facts = Arc::new(facts);
        self.facts.insert(meta.id.clone(), (meta.last_modified, Arc::clone(&facts)));
        facts
    }

    fn assets(&self, base: &str, meta: &DatasetMeta, facts: &Facts, plugins: &[String]) -> Map<String, Value> {
        self.config
            .profile
            .assets
            .iter()
            .filter(|(_, template): &(&String, &AssetTemplate)| {
                template.plugin.as_ref().is_none_or(|p| plugins.contains(p))
                    && (!template.stored_chunks || facts.stored_chunks)
                    && (!template.netcdf_files || facts.netcdf_files)
            })
            .map(|(key, template)| (key.clone(), fill(&Value::Object(template.fields.clone()), base, &meta.id, false)))
            .collect()
    }

    fn links(&self, tree: Tree, base: &str, id: &str) -> Links {
        let (cid, id) = (segment(self.collection_id()), segment(id));
        match tree {
            Tree::Standalone => {
                let collection = format!("{base}/stac-collection-all.json");
                Links {
                    self_href: format!("{base}/datasets/{id}/stac"),
                    parent: collection.clone(),
                    root: collection.clone(),
                    collection,
                }
            }
            Tree::Api => {
                let collection = format!("{base}/stac/collections/{cid}");
                Links {
                    self_href: format!("{base}/stac/collections/{cid}/items/{id}"),
                    parent: collection.clone(),
                    collection,
                    root: format!("{base}/stac"),
                }
            }
        }
    }

    /// The item of dataset `id`, its links and hrefs starting with [`BASE_PLACEHOLDER`]
    /// ([`rebase`] fills in the base URL); `None` when there is no such dataset. A cached item
    /// is checked against the data's modification time, unless `recent_is_enough`: searches
    /// take items up to [`ITEM_TTL`] old, as asking every dataset's metadata was half their
    /// time.
    async fn item(&self, host: &Host, id: &str, tree: Tree, recent_is_enough: bool) -> Option<Arc<Value>> {
        let key = (id.to_owned(), tree);
        let base = BASE_PLACEHOLDER;
        let cached = self.items.get(&key);
        if recent_is_enough {
            if let Some((_, item)) = cached {
                return Some(item);
            }
        }
        let meta = host.metadata(id).ok()?;
        if let Some((modified, item)) = cached {
            if modified == meta.last_modified {
                return Some(item);
            }
        }
        let facts = self.facts(host, &meta).await;
        let context = ItemContext {
            profile: &self.config.profile,
            assets: self.assets(base, &meta, &facts, &host.plugins()),
            links: self.links(tree, base, id),
        };
        let item = Arc::new(item::item(&meta, &facts, context));
        self.items.insert(key, (meta.last_modified, Arc::clone(&item)));
        Some(item)
    }

    /// The searchable text of `item`'s dataset, kept as long as items are.
    fn text(&self, host: &Host, item: &Value) -> Arc<str> {
        let id = item["id"].as_str().unwrap_or_default();
        self.texts.get_with(id.to_owned(), || match host.metadata(id) {
            Ok(meta) => Arc::from(searchable_text(&meta)),
            Err(_) => Arc::from(id.to_lowercase()),
        })
    }

    /// The items of every dataset, in dataset order.
    async fn all_items(&self, host: &Host, tree: Tree) -> Vec<Arc<Value>> {
        let ids = host.datasets();
        // The futures are made first: a stream holding the closure is not `Send` for every
        // lifetime (rust-lang/rust#102211).
        let pending: Vec<_> = ids.iter().map(|id| self.item(host, id, tree, true)).collect();
        let items: Vec<Option<Arc<Value>>> = stream::iter(pending).buffered(PARALLEL_DATASETS).collect().await;
        items.into_iter().flatten().collect()
    }

    /// `GET /datasets/{id}/stac`.
    pub(crate) async fn dataset_item(&self, host: &Host, req: &Request) -> Response {
        let id = req.dataset_id().unwrap_or_default();
        let base = self.base_url(req);
        match self.item(host, id, Tree::Standalone, false).await {
            Some(item) => geojson(200, &rebase(&item, &base)),
            None => Error::not_found(format!("dataset '{id}' not found")).into(),
        }
    }

    fn collection_doc(&self, items: &[Arc<Value>], links: Vec<Value>) -> Value {
        let refs: Vec<&Value> = items.iter().map(|item| &**item).collect();
        item::collection(&self.config.profile, &refs, links)
    }

    /// `GET /stac-collection-all.json`: the collection, linking to every item.
    pub(crate) async fn collection_all(&self, host: &Host, req: &Request) -> Response {
        let base = self.base_url(req);
        let items = self.all_items(host, Tree::Standalone).await;
        let href = format!("{base}/stac-collection-all.json");
        let mut links = vec![
            json!({"rel": "self", "href": href, "type": "application/json"}),
            json!({"rel": "root", "href": href, "type": "application/json"}),
        ];
        if let Some(parent) = &self.config.profile.collection.parent_catalog {
            links.push(json!({"rel": "parent", "href": parent, "type": "application/json"}));
        }
        links.extend(items.iter().map(|item| {
            json!({"rel": "item", "href": format!("{base}/datasets/{}/stac", segment(item["id"].as_str().unwrap_or_default())), "type": "application/geo+json"})
        }));
        links.extend(self.config.profile.links.iter().cloned());
        Response::json(200, &self.collection_doc(&items, links))
    }

    fn api_collection(&self, base: &str, items: &[Arc<Value>]) -> Value {
        let cid = segment(self.collection_id());
        let mut links = vec![
            json!({"rel": "self", "href": format!("{base}/stac/collections/{cid}"), "type": "application/json"}),
            json!({"rel": "root", "href": format!("{base}/stac"), "type": "application/json"}),
            json!({"rel": "parent", "href": format!("{base}/stac"), "type": "application/json"}),
            json!({"rel": "items", "href": format!("{base}/stac/collections/{cid}/items"), "type": "application/geo+json"}),
        ];
        links.extend(self.config.profile.links.iter().cloned());
        self.collection_doc(items, links)
    }

    /// `GET /stac`: the landing page.
    pub(crate) fn landing(&self, host: &Host, req: &Request) -> Response {
        let base = self.base_url(req);
        let catalog = &self.config.profile.catalog;
        let cid = segment(self.collection_id());
        let root = format!("{base}/stac");
        let mut landing = json!({
            "type": "Catalog",
            "stac_version": STAC_VERSION,
            "id": catalog.id,
            "title": catalog.title,
            "description": catalog.description,
            "conformsTo": CONFORMANCE,
            "links": [
                {"rel": "self", "href": root, "type": "application/json"},
                {"rel": "root", "href": root, "type": "application/json"},
                {"rel": "conformance", "href": format!("{root}/conformance"), "type": "application/json"},
                {"rel": "data", "href": format!("{root}/collections"), "type": "application/json"},
                {"rel": "child", "href": format!("{root}/collections/{cid}"), "type": "application/json"},
                {"rel": "search", "href": format!("{root}/search"), "type": "application/geo+json", "method": "GET"},
                {"rel": "search", "href": format!("{root}/search"), "type": "application/geo+json", "method": "POST"},
                {"rel": "service-desc", "href": format!("{base}/openapi.json"), "type": "application/vnd.oai.openapi+json;version=3.1"},
            ],
        });
        if host.plugins().iter().any(|name| name == "web") {
            if let Some(links) = landing["links"].as_array_mut() {
                links.push(json!({"rel": "service-doc", "href": format!("{base}/docs"), "type": "text/html"}));
            }
        }
        Response::json(200, &landing)
    }

    /// `GET /stac/conformance`.
    pub(crate) fn conformance() -> Response {
        Response::json(200, &json!({"conformsTo": CONFORMANCE}))
    }

    /// `GET /stac/collections`.
    pub(crate) async fn collections(&self, host: &Host, req: &Request) -> Response {
        let base = self.base_url(req);
        let items = self.all_items(host, Tree::Api).await;
        let root = format!("{base}/stac");
        Response::json(
            200,
            &json!({
                "collections": [self.api_collection(&base, &items)],
                "links": [
                    {"rel": "self", "href": format!("{root}/collections"), "type": "application/json"},
                    {"rel": "root", "href": root, "type": "application/json"},
                ],
            }),
        )
    }

    fn known_collection(&self, req: &Request) -> Result<(), Response> {
        let cid = req.param("cid").unwrap_or_default();
        if cid == self.collection_id() {
            Ok(())
        } else {
            Err(Error::not_found(format!("collection '{cid}' not found (this server has '{}')", self.collection_id()))
                .into())
        }
    }

    /// `GET /stac/collections/{cid}`.
    pub(crate) async fn collection(&self, host: &Host, req: &Request) -> Response {
        if let Err(response) = self.known_collection(req) {
            return response;
        }
        let base = self.base_url(req);
        let items = self.all_items(host, Tree::Api).await;
        Response::json(200, &self.api_collection(&base, &items))
    }

    /// `GET /stac/collections/{cid}/items/{item}`.
    pub(crate) async fn collection_item(&self, host: &Host, req: &Request) -> Response {
        if let Err(response) = self.known_collection(req) {
            return response;
        }
        let id = req.param("item").unwrap_or_default();
        let base = self.base_url(req);
        if !host.datasets().iter().any(|known| known == id) {
            return Error::not_found(format!("item '{id}' not found")).into();
        }
        match self.item(host, id, Tree::Api, false).await {
            Some(item) => geojson(200, &rebase(&item, &base)),
            None => Error::not_found(format!("item '{id}' not found")).into(),
        }
    }

    /// `GET /stac/collections/{cid}/items`: the collection's items, filtered by `bbox`,
    /// `datetime` and `limit` (OGC API Features), with `next` links.
    pub(crate) async fn collection_items(&self, host: &Host, req: &Request) -> Response {
        if let Err(response) = self.known_collection(req) {
            return response;
        }
        let search = match Search::from_query(&req.query) {
            Ok(search) => search,
            Err(message) => return Error::invalid(message).into(),
        };
        let href = format!("{}/stac/collections/{}/items", self.base_url(req), segment(self.collection_id()));
        self.answer(host, req, search, &href, false).await
    }

    /// `GET /stac/search`.
    pub(crate) async fn search_get(&self, host: &Host, req: &Request) -> Response {
        match Search::from_query(&req.query) {
            Ok(search) => self.answer(host, req, search, &format!("{}/stac/search", self.base_url(req)), false).await,
            Err(message) => Error::invalid(message).into(),
        }
    }

    /// `POST /stac/search`.
    pub(crate) async fn search_post(&self, host: &Host, req: &Request) -> Response {
        match Search::from_body(&req.body) {
            Ok(search) => self.answer(host, req, search, &format!("{}/stac/search", self.base_url(req)), true).await,
            Err(message) => Error::invalid(message).into(),
        }
    }

    /// One page of the items `search` matches, as a FeatureCollection.
    async fn answer(&self, host: &Host, req: &Request, search: Search, href: &str, post: bool) -> Response {
        let (filter, limit, offset) = match (search.filter(), search.page_size(), search.offset()) {
            (Ok(filter), Ok(limit), Ok(offset)) => (filter, limit, offset),
            (Err(message), _, _) | (_, Err(message), _) | (_, _, Err(message)) => {
                return Error::invalid(message).into()
            }
        };
        let base = self.base_url(req);
        let matched: Vec<Arc<Value>> = if filter.wants_collection(self.collection_id()) {
            let items = self.all_items(host, Tree::Api).await.into_iter().filter(|item| filter.matches(item));
            items.filter(|item| !filter.has_text() || filter.matches_text(&self.text(host, item))).collect()
        } else {
            Vec::new()
        };
        let total = matched.len();
        let page: Vec<Value> = matched.iter().skip(offset).take(limit).map(|item| rebase(item, &base)).collect();
        let returned = page.len();
        // A POST search's page cannot be fetched again by its URL alone: `self` names the
        // endpoint, as other STAC APIs do.
        let this = if post || req.query.is_empty() { href.to_owned() } else { format!("{href}?{}", req.query) };
        let mut links = vec![
            json!({"rel": "self", "href": this, "type": "application/geo+json"}),
            json!({"rel": "root", "href": format!("{base}/stac"), "type": "application/json"}),
        ];
        if offset + returned < total {
            let next = Search { token: Some(format!("next:{}", offset + returned)), limit: Some(limit), ..search };
            links.push(if post {
                json!({"rel": "next", "href": href, "type": "application/geo+json", "method": "POST", "body": next, "merge": false})
            } else {
                json!({"rel": "next", "href": format!("{href}?{}", query_string(&next)), "type": "application/geo+json", "method": "GET"})
            });
        }
        geojson(
            200,
            &json!({
                "type": "FeatureCollection",
                "features": page,
                "links": links,
                "numberMatched": total,
                "numberReturned": returned,
            }),
        )
    }
}

/// `search` as `GET` parameters.
fn query_string(search: &Search) -> String {
    let join = |values: &[String]| values.join(",");
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(bbox) = &search.bbox {
        pairs.push(("bbox", bbox.iter().map(f64::to_string).collect::<Vec<_>>().join(",")));
    }
    if let Some(intersects) = &search.intersects {
        pairs.push(("intersects", intersects.to_string()));
    }
    if let Some(datetime) = &search.datetime {
        pairs.push(("datetime", datetime.clone()));
    }
    if let Some(ids) = &search.ids {
        pairs.push(("ids", join(ids)));
    }
    if let Some(collections) = &search.collections {
        pairs.push(("collections", join(collections)));
    }
    if let Some(query) = &search.query {
        pairs.push(("query", Value::Object(query.clone()).to_string()));
    }
    if let Some(q) = &search.q {
        let terms = q.as_array().map_or_else(
            || q.as_str().unwrap_or_default().to_owned(),
            |terms| terms.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
        );
        pairs.push(("q", terms));
    }
    if let Some(limit) = search.limit {
        pairs.push(("limit", limit.to_string()));
    }
    if let Some(token) = &search.token {
        pairs.push(("token", token.clone()));
    }
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn templates_are_filled_and_ids_encoded_in_hrefs() {
        let template = json!({
            "href": "{base_url}/datasets/{id}/zarr", "title": "{id} as Zarr",
            "alternate": {"processed": {"href": "{base_url}/datasets/{id}/zarr"}}, "roles": ["data"],
        });
        let filled = fill(&template, "http://h", "tas day#1", false);
        assert_eq!(filled["href"], "http://h/datasets/tas%20day%231/zarr");
        assert_eq!(filled["title"], "tas day#1 as Zarr");
        assert_eq!(filled["alternate"]["processed"]["href"], "http://h/datasets/tas%20day%231/zarr");
        assert_eq!(filled["roles"], json!(["data"]));
        assert_eq!(segment("a/b"), "a%2Fb");
    }
}
