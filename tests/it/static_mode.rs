use crate::util::{cargo_build, cloudify_bin, profile_dir, repo, Server};

#[test]
fn static_all_serves_the_same_plugins_without_shared_libraries() {
    let target = profile_dir().parent().unwrap().join("static");
    cargo_build(&repo().join("host/Cargo.toml"), &["--features", "static-all"], &target);
    let static_bin = target.join("release/cloudify");
    let empty = tempfile::tempdir().unwrap();
    let static_server = Server::start_with(
        &static_bin,
        &["--plugin-dir", empty.path().to_str().unwrap()],
        &[("CLOUDIFY_PLUGINS__SEARCH_EXE_DIR", "false")],
    );
    let dynamic_server = Server::start_with(&cloudify_bin(), &[], &[]);

    let plugins = static_server.get("/plugins").json();
    assert_eq!(plugins["intake"]["path"], "static");
    assert_eq!(plugins["zarr"]["path"], "static");
    assert_eq!(plugins["kerchunk"]["path"], "static");
    assert_eq!(plugins["stac"]["path"], "static");
    assert_eq!(plugins["datapoint"]["path"], "static");
    assert_eq!(
        static_server.get("/datasets/demo/stac").json()["assets"]["zstore"]["href"],
        format!("{}/datasets/demo/zarr", static_server.url)
    );
    let documents = [
        "/stac",
        "/stac/conformance",
        "/intake.yaml",
        "/datasets/demo/catalog.yaml",
        "/datasets/demo/zarr/.zmetadata",
        "/datasets/demo/zarr/zarr.json",
        "/datasets/demo/kerchunk/.zmetadata",
        "/datasets/demo/kerchunk.json",
    ];
    for path in documents {
        let (a, b) = (static_server.get(path), dynamic_server.get(path));
        assert_eq!(a.status, 200);
        assert_eq!(a.text().replace(&static_server.url, "URL"), b.text().replace(&dynamic_server.url, "URL"), "{path}");
    }
    for chunk in ["/datasets/demo/zarr/tas/0.0.0", "/datasets/demo/kerchunk/tas/0.0.0"] {
        assert_eq!(static_server.get(chunk).body, dynamic_server.get(chunk).body);
    }
    let paths =
        |s: &Server| s.get("/openapi.json").json()["paths"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(paths(&static_server), paths(&dynamic_server));

    // With the shared library also in reach, the compiled-in copy wins and the file is refused.
    let both =
        Server::start_with(&static_bin, &["--plugin-dir", cloudify_bin().parent().unwrap().to_str().unwrap()], &[]);
    assert_eq!(both.get("/plugins").json()["intake"]["path"], "static");
    assert!(both.log().contains("plugin 'intake' is already loaded from static"), "{}", both.log());
}
