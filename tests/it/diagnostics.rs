//! The diagnostics plugin loaded from its shared library: results on the demo, and
//! cloudify's injection refused without changing anything.

use crate::util::Server;

#[test]
fn diagnostics_compute_and_change_nothing() {
    let server = Server::start(&[]);
    let (info, datasets) = (server.get("/datasets/demo/info").body, server.get("/datasets").body);
    let climatology = server.get("/datasets/demo/groupby/tas/time.month/mean");
    assert_eq!(climatology.status, 200, "{}", climatology.text());
    let doc = climatology.json();
    assert_eq!(doc["dims"][0], "month");
    let series = server.get("/datasets/demo/fldmean/tas").json();
    let steps = server.get("/datasets/demo/info").json()["dimensions"]["time"].as_u64().unwrap() as usize;
    assert_eq!(series["data"].as_array().unwrap().len(), steps);
    for hostile in [
        "/datasets/demo/groupby/tas/time.month).__class__.__name__/mean",
        "/datasets/demo/groupby/tas/time.month%29.__class__/mean",
        "/datasets/demo/groupby/tas/__import__('os').system('true')/mean",
        "/datasets/demo/groupby/tas/time.month/__import__",
    ] {
        let reply = server.get(hostile);
        assert_eq!(reply.status, 400, "{hostile}: {}", reply.text());
        assert!(reply.json()["error"].is_string());
    }
    assert_eq!(server.get("/datasets/demo/info").body, info, "a GET changed the dataset");
    assert_eq!(server.get("/datasets").body, datasets, "a GET added a dataset");
}
