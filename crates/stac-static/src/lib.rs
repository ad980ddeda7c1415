//! A STAC API's catalog written as static files (`cloudify stac build`): the documents are
//! asked of the API (the host asks its router in-process, so the same code answers `/stac`
//! on a server) and their links rewritten to relative paths, in pystac's layout:
//!
//! ```text
//! OUT/catalog.json
//! OUT/{collection}/collection.json
//! OUT/{collection}/{item}/{item}.json
//! ```
//!
//! Asset hrefs keep the server's URL (`public_url`): the data stays served.

use std::{
    future::Future,
    path::{Path, PathBuf},
};

use serde_json::{json, Value};

/// Links that say where a document sits in the tree; the static tree gets its own.
const TREE_RELS: [&str; 13] = [
    "self",
    "root",
    "parent",
    "child",
    "item",
    "items",
    "collection",
    "conformance",
    "data",
    "search",
    "service-desc",
    "service-doc",
    "next",
];

/// What was written.
#[derive(Debug)]
pub struct Written {
    /// The root catalog file.
    pub catalog: PathBuf,
    /// Collection files written.
    pub collections: usize,
    /// Item files written.
    pub items: usize,
}

/// Replaces the tree links of `doc` with `tree`, keeping the others (licence, profile links).
fn relink(doc: &mut Value, tree: Vec<Value>) {
    let kept: Vec<Value> = doc["links"]
        .as_array()
        .map(|links| {
            links.iter().filter(|l| !TREE_RELS.contains(&l["rel"].as_str().unwrap_or_default())).cloned().collect()
        })
        .unwrap_or_default();
    doc["links"] = Value::Array(tree.into_iter().chain(kept).collect());
}

fn link(rel: &str, href: &str, kind: &str) -> Value {
    json!({"rel": rel, "href": href, "type": kind})
}

/// A path segment from an id, refusing ids that would leave the folder.
fn segment(id: &str) -> Result<&str, String> {
    if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\\']) {
        return Err(format!("id '{id}' cannot be a file name"));
    }
    Ok(id)
}

fn write(path: &Path, doc: &Value) -> Result<(), String> {
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).map_err(|err| format!("{}: {err}", folder.display()))?;
    }
    let text = serde_json::to_string_pretty(doc).map_err(|err| err.to_string())?;
    std::fs::write(path, text + "\n").map_err(|err| format!("{}: {err}", path.display()))
}

/// Writes the static catalog of the STAC API that `get` answers (a path such as
/// `/stac/collections` to its JSON document) into `out`.
///
/// # Errors
/// When a document cannot be produced, an id is no file name, or a file cannot be written.
pub async fn build_static_catalog<F, Fut>(get: F, out: &Path) -> Result<Written, String>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Value, String>>,
{
    let mut catalog = get("/stac".to_owned()).await?;
    if let Some(object) = catalog.as_object_mut() {
        object.remove("conformsTo");
    }
    let collections = get("/stac/collections".to_owned()).await?;
    let collections = collections["collections"].as_array().cloned().unwrap_or_default();
    let mut catalog_links = vec![link("root", "./catalog.json", "application/json")];
    let mut items_written = 0;
    for collection in &collections {
        let cid = segment(collection["id"].as_str().unwrap_or_default())?.to_owned();
        catalog_links.push(link("child", &format!("./{cid}/collection.json"), "application/json"));
        let mut items = Vec::new();
        let mut page = get(format!("/stac/collections/{cid}/items?limit=10000")).await?;
        loop {
            items.extend(page["features"].as_array().cloned().unwrap_or_default());
            let next = page["links"]
                .as_array()
                .and_then(|links| links.iter().find(|l| l["rel"] == "next"))
                .and_then(|l| l["href"].as_str());
            // Next links are absolute (the public URL); the API is asked by path.
            let Some(next) = next.and_then(|href| href.find("/stac/").map(|at| href[at..].to_owned())) else { break };
            page = get(next).await?;
        }
        let mut collection = collection.clone();
        let mut tree = vec![
            link("root", "../catalog.json", "application/json"),
            link("parent", "../catalog.json", "application/json"),
        ];
        for item in &mut items {
            let id = segment(item["id"].as_str().unwrap_or_default())?.to_owned();
            tree.push(link("item", &format!("./{id}/{id}.json"), "application/geo+json"));
            relink(
                item,
                vec![
                    link("root", "../../catalog.json", "application/json"),
                    link("parent", "../collection.json", "application/json"),
                    link("collection", "../collection.json", "application/json"),
                ],
            );
            write(&out.join(&cid).join(&id).join(format!("{id}.json")), item)?;
            items_written += 1;
        }
        relink(&mut collection, tree);
        write(&out.join(&cid).join("collection.json"), &collection)?;
    }
    relink(&mut catalog, catalog_links);
    let path = out.join("catalog.json");
    write(&path, &catalog)?;
    Ok(Written { catalog: path, collections: collections.len(), items: items_written })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_links_are_replaced_and_others_kept() {
        let mut doc = json!({"links": [
            {"rel": "self", "href": "http://x/a"}, {"rel": "license", "href": "http://x/l"}, {"rel": "root", "href": "http://x/"}]});
        relink(&mut doc, vec![link("root", "../catalog.json", "application/json")]);
        let rels: Vec<&str> = doc["links"].as_array().unwrap().iter().map(|l| l["rel"].as_str().unwrap()).collect();
        assert_eq!(rels, ["root", "license"]);
        assert_eq!(doc["links"][0]["href"], "../catalog.json");
    }

    #[test]
    fn ids_stay_inside_the_folder() {
        assert_eq!(segment("tas_day"), Ok("tas_day"));
        assert!(segment("../x").is_err());
        assert!(segment("..").is_err());
        assert!(segment("").is_err());
    }
}

#[cfg(test)]
mod api_tests {
    use std::collections::HashMap;

    use super::*;

    /// A two-page STAC API of one collection, as a map from path to document.
    fn api() -> HashMap<String, Value> {
        let item = |id: &str| {
            json!({"type": "Feature", "id": id, "links": [{"rel": "self", "href": format!("http://x/stac/collections/c/items/{id}")}],
                   "assets": {"zstore": {"href": format!("http://x/datasets/{id}/zarr")}}})
        };
        HashMap::from([
            ("/stac".to_owned(), json!({"type": "Catalog", "id": "root", "conformsTo": ["x"], "links": []})),
            ("/stac/collections".to_owned(), json!({"collections": [{"type": "Collection", "id": "c", "links": []}]})),
            (
                "/stac/collections/c/items?limit=10000".to_owned(),
                json!({"features": [item("a")], "links": [{"rel": "next", "href": "http://x/stac/collections/c/items?token=next:1"}]}),
            ),
            ("/stac/collections/c/items?token=next:1".to_owned(), json!({"features": [item("b")], "links": []})),
        ])
    }

    #[test]
    fn every_page_of_items_is_written_with_relative_links() {
        let api = api();
        let out = tempfile::tempdir().unwrap();
        let get = |path: String| {
            let doc = api.get(&path).cloned().ok_or(format!("GET {path}: 404"));
            async move { doc }
        };
        let written = futures::executor::block_on(build_static_catalog(get, out.path())).unwrap();
        assert_eq!((written.collections, written.items), (1, 2));
        let read = |p: &str| -> Value { serde_json::from_slice(&std::fs::read(out.path().join(p)).unwrap()).unwrap() };
        let catalog = read("catalog.json");
        assert!(catalog.get("conformsTo").is_none());
        assert_eq!(catalog["links"][1]["href"], "./c/collection.json");
        let collection = read("c/collection.json");
        let items: Vec<&str> = collection["links"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["rel"] == "item")
            .map(|l| l["href"].as_str().unwrap())
            .collect();
        assert_eq!(items, ["./a/a.json", "./b/b.json"]);
        let b = read("c/b/b.json");
        assert_eq!(b["links"][0], json!({"rel": "root", "href": "../../catalog.json", "type": "application/json"}));
        assert_eq!(b["assets"]["zstore"]["href"], "http://x/datasets/b/zarr", "data stays served");
    }

    #[test]
    fn an_item_id_that_would_leave_the_folder_stops_the_build() {
        let mut api = api();
        api.insert(
            "/stac/collections/c/items?token=next:1".to_owned(),
            json!({"features": [{"id": "../evil", "links": []}]}),
        );
        let out = tempfile::tempdir().unwrap();
        let get = |path: String| {
            let doc = api.get(&path).cloned().ok_or(format!("GET {path}: 404"));
            async move { doc }
        };
        let err = futures::executor::block_on(build_static_catalog(get, out.path())).unwrap_err();
        assert!(err.contains("cannot be a file name"), "{err}");
        assert!(!out.path().join("evil").exists() && !out.path().parent().unwrap().join("evil").exists());
    }
}
