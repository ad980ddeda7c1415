//! The icechunk plugin against an in-memory host: a repository written here with the
//! icechunk crate (a group, an array of two chunks, two commits) served per ref.

use std::sync::Arc;

use bytes::Bytes;
use cloudify_icechunk_plugin::plugin_module;
use cloudify_sdk::{testing::MockHost, HostExt};
use futures::executor::block_on;
use icechunk::{Repository, Store};
use serde_json::json;

const ARRAY: &str = r#"{"zarr_format": 3, "node_type": "array", "shape": [4, 2], "data_type": "float32",
  "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2, 2]}},
  "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
  "fill_value": "NaN", "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
  "dimension_names": ["y", "x"], "attributes": {"units": "K"}}"#;

fn chunk(values: [f32; 4]) -> Bytes {
    values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>().into()
}

/// Two commits on main: the second changes the first chunk; the first is tagged `v1`.
fn write_repository(path: &std::path::Path) -> (String, String) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let storage = icechunk::new_local_filesystem_storage(path).await.unwrap();
        let repo = Repository::create(storage).execute().await.unwrap();
        let mut ids = Vec::new();
        for (step, first) in [(0, [1.0, 2.0, 3.0, 4.0]), (1, [10.0, 20.0, 30.0, 40.0])] {
            let session = Arc::new(tokio::sync::RwLock::new(repo.writable_session("main").await.unwrap()));
            let store = Store::from_session(Arc::clone(&session)).await;
            if step == 0 {
                let group = json!({"zarr_format": 3, "node_type": "group", "attributes": {"title": "test"}});
                store.set("zarr.json", group.to_string().into()).await.unwrap();
                store.set("v/zarr.json", Bytes::from(ARRAY)).await.unwrap();
                store.set("v/c/1/0", chunk([5.0, 6.0, 7.0, 8.0])).await.unwrap();
            }
            store.set("v/c/0/0", chunk(first)).await.unwrap();
            let id = session.write().await.commit(format!("step {step}")).execute().await.unwrap();
            ids.push(id);
        }
        repo.create_tag("v1", &ids[0]).await.unwrap();
        (ids[0].to_string(), ids[1].to_string())
    })
}

fn values(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

#[test]
fn repositories_are_datasets_per_ref() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("repo");
    let (first, second) = write_repository(&path);
    let config = json!({"repos": [
        {"id": "main", "url": path.to_str().unwrap()},
        {"id": "tagged", "url": path.to_str().unwrap(), "ref": "v1"},
        {"id": "missing", "url": folder.path().join("nothing").to_str().unwrap()},
    ]});
    let plugin = MockHost::new().config(config).load(plugin_module()).expect("icechunk loads");
    let host = plugin.host();
    assert_eq!(host.datasets(), ["main", "tagged"], "the missing repository is skipped");
    assert!(plugin.logs().iter().any(|(_, line)| line.contains("'missing' not served")));

    let meta = host.metadata("main").unwrap();
    assert_eq!(meta.attributes["title"], "test");
    assert_eq!(meta.attributes["_icechunk_snapshot_id"], second.as_str());
    assert_eq!(meta.attributes["_icechunk_href"], format!("file://{}", path.display()));
    assert!(meta.last_modified.is_some_and(|t| t > 1_700_000_000), "the commit's time");
    let v = &meta.variables["v"];
    assert_eq!(
        (v.dimensions.clone(), v.shape.clone(), v.chunks.clone()),
        (vec!["y".to_owned(), "x".to_owned()], vec![4, 2], vec![2, 2])
    );
    assert_eq!(
        values(&block_on(host.region("main", "v", &[0, 0], &[4, 2])).unwrap()),
        [10.0, 20.0, 30.0, 40.0, 5.0, 6.0, 7.0, 8.0]
    );
    assert_eq!(host.metadata("tagged").unwrap().attributes["_icechunk_snapshot_id"], first.as_str());
    assert_eq!(values(&block_on(host.chunk("tagged", "v", &[0, 0])).unwrap()), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(host.metadata("nowhere").unwrap_err().kind().status(), 404);
}

#[test]
fn the_plugin_keeps_the_contract() {
    let plugin = MockHost::new().load(plugin_module()).expect("icechunk loads without repositories");
    block_on(plugin.assert_conformance());
}
