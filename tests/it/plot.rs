//! The plot plugin loaded from its shared library: the demo dataset plots out of the box.

use crate::util::Server;

#[test]
fn the_demo_plots_out_of_the_box() {
    let server = Server::start(&[]);
    let map = server.get("/datasets/demo/plot/tas");
    assert_eq!((map.status, map.content_type.as_str()), (200, "image/png"), "{}", map.text());
    assert_eq!(&map.body[..8], b"\x89PNG\r\n\x1a\n");
    let drawn = server.get("/datasets/demo/plot/tas/map/viridis?format=json").json();
    let meta = server.get("/datasets/demo/info").json();
    let size = |dim: &str| meta["dimensions"][dim].as_u64().unwrap() as usize;
    assert_eq!(drawn["frames"][0]["values"].as_array().unwrap().len(), size("lat") * size("lon"));
    let line = server.get("/datasets/demo/plot/tas/line?format=json").json();
    assert_eq!(line["values"].as_array().unwrap().len(), size("time"));
    assert!(line["values"].as_array().unwrap().iter().all(|v| (200.0..330.0).contains(&v.as_f64().unwrap())));
    let refused = server.get("/datasets/demo/plot/tas/pie");
    assert_eq!(refused.status, 400);
    assert!(refused.json()["error"].as_str().unwrap().contains("map"));
}
