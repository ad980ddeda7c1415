//! `cloudify stac build`: the stac plugin's catalog written as static files, without a
//! server. The documents are asked of the router in-process (the same code answers
//! `/stac` on a server) and their links rewritten to relative paths, in pystac's layout:
//!
//! ```text
//! OUT/catalog.json
//! OUT/{collection}/collection.json
//! OUT/{collection}/{item}/{item}.json
//! ```
//!
//! Asset hrefs keep the server's URL (`public_url`): the data stays served.

use std::path::{Path, PathBuf};

use axum::{
    body::{to_bytes, Body},
    http::{Request, StatusCode},
    Router,
};
use serde_json::{json, Value};
use tower::ServiceExt as _;

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

async fn get(router: &Router, path: &str) -> Result<Value, String> {
    let request = Request::get(path).body(Body::empty()).map_err(|err| err.to_string())?;
    let response = router.clone().oneshot(request).await.map_err(|err| format!("GET {path}: {err}"))?;
    let status = response.status();
    let body = to_bytes(response.into_body(), usize::MAX).await.map_err(|err| format!("GET {path}: {err}"))?;
    if status == StatusCode::NOT_FOUND && path == "/stac" {
        return Err("the stac plugin is not loaded (check [plugins] enabled/disabled)".to_owned());
    }
    if !status.is_success() {
        return Err(format!("GET {path}: {status}: {}", String::from_utf8_lossy(&body)));
    }
    serde_json::from_slice(&body).map_err(|err| format!("GET {path}: not JSON: {err}"))
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

/// Writes the static catalog of `router`'s STAC API into `out`.
///
/// # Errors
/// When the stac plugin is not loaded, a document cannot be produced or a file not written.
pub async fn build_static_catalog(router: &Router, out: &Path) -> Result<Written, String> {
    let mut catalog = get(router, "/stac").await?;
    if let Some(object) = catalog.as_object_mut() {
        object.remove("conformsTo");
    }
    let collections = get(router, "/stac/collections").await?;
    let collections = collections["collections"].as_array().cloned().unwrap_or_default();
    let mut catalog_links = vec![link("root", "./catalog.json", "application/json")];
    let mut items_written = 0;
    for collection in &collections {
        let cid = segment(collection["id"].as_str().unwrap_or_default())?.to_owned();
        catalog_links.push(link("child", &format!("./{cid}/collection.json"), "application/json"));
        let mut items = Vec::new();
        let mut page = get(router, &format!("/stac/collections/{cid}/items?limit=10000")).await?;
        loop {
            items.extend(page["features"].as_array().cloned().unwrap_or_default());
            let next = page["links"]
                .as_array()
                .and_then(|links| links.iter().find(|l| l["rel"] == "next"))
                .and_then(|l| l["href"].as_str());
            // Next links are absolute (the public URL); the router wants the path.
            let Some(next) = next.and_then(|href| href.find("/stac/").map(|at| href[at..].to_owned())) else { break };
            page = get(router, &next).await?;
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
