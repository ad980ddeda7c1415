use std::process::Command;

use crate::util::{cloudify_bin, fixtures, Server};

#[test]
fn plugins_command_lists_plugins_routes_and_refusals() {
    let output = Command::new(cloudify_bin())
        .arg("plugins")
        .arg("--plugin-dir")
        .arg(&fixtures().plugin_dir)
        .env_remove("CLOUDIFY_CONFIG")
        .env("CLOUDIFY_LOG", "off")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("hello 0.1.0 (") && l.contains("libcloudify_plugin_hello.so")),
        "{text}"
    );
    assert!(text.contains("    GET /hello\n") && text.contains("    GET /datasets/{id}/hello\n"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("intake 0.1.0")), "{text}");
    let refused: Vec<&str> = text.lines().filter(|l| l.starts_with("refused ")).collect();
    assert_eq!(refused.len(), 3, "{text}");
    assert!(refused.iter().any(|l| l.contains("libcloudify_plugin_bogus.so: not a cloudify plugin")), "{text}");
}

#[test]
fn check_config_accepts_good_files_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[server]\nbind = \"127.0.0.1:9999\"\n[demo]\nid = \"air\"\n[plugin.intake]\npublic_url = \"https://data.example\"\n").unwrap();
    let out = Command::new(cloudify_bin()).args(["check-config", "--config"]).arg(&good).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("configuration OK") && text.contains("bind = \"127.0.0.1:9999\""), "{text}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nbind = 12\n").unwrap();
    let out = Command::new(cloudify_bin()).args(["check-config", "--config"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid configuration"));

    // The same file drives the server; the plugin table reaches the intake plugin.
    let server = Server::start_with(&cloudify_bin(), &["--config", good.to_str().unwrap()], &[]);
    assert_eq!(server.get("/datasets").json(), serde_json::json!(["air"]));
    let catalog = server.get("/intake.yaml").text();
    assert!(catalog.contains("urlpath: https://data.example/datasets/air/{{ method }}"), "{catalog}");
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut server = Server::start_with(&cloudify_bin(), &[], &[]);
    assert_eq!(server.get("/health").status, 200);
    let pid = server.pid();
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let status = server.wait_exit(std::time::Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "log:\n{}", server.log());
    assert!(server.log().contains("cloudify stopped"));
}

#[test]
fn the_example_config_is_valid_and_complete() {
    let example = crate::util::repo().join("examples/config/cloudify.toml");
    let out = Command::new(cloudify_bin()).args(["check-config", "--config"]).arg(&example).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Every key the server knows is in the example: its effective config equals the defaults'.
    let defaults = Command::new(cloudify_bin()).arg("check-config").env_remove("CLOUDIFY_CONFIG").output().unwrap();
    // Plugin tables are the plugins' own business (their defaults live in the plugins).
    let host_part =
        |bytes: Vec<u8>| String::from_utf8(bytes).unwrap().split("\n[plugin").next().unwrap().trim_end().to_owned();
    assert_eq!(host_part(out.stdout), host_part(defaults.stdout));
}

#[test]
fn stac_build_writes_a_static_catalog_without_a_server() {
    let out = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let build = |extra: &[(&str, &str)]| {
        let mut command = Command::new(cloudify_bin());
        command
            .args(["stac", "build", "--base-url", "https://data.example.org", "--out"])
            .arg(out.path())
            .env_remove("CLOUDIFY_CONFIG")
            .env("CLOUDIFY_LOG", "off")
            .env("CLOUDIFY_CACHE__DIR", cache.path());
        command.envs(extra.iter().copied()).output().unwrap()
    };
    let done = build(&[]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let read = |path: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.path().join(path)).unwrap()).unwrap()
    };
    let catalog = read("catalog.json");
    assert_eq!(catalog["type"], "Catalog");
    assert_eq!(catalog["links"][1]["href"], "./cloudify-all/collection.json");
    let collection = read("cloudify-all/collection.json");
    assert_eq!(
        collection["links"][2],
        serde_json::json!({"rel": "item", "href": "./demo/demo.json", "type": "application/geo+json"})
    );
    let item = read("cloudify-all/demo/demo.json");
    assert_eq!(item["assets"]["zstore"]["href"], "https://data.example.org/datasets/demo/zarr");
    assert_eq!(item["links"][0]["href"], "../../catalog.json");

    let without = build(&[("CLOUDIFY_PLUGINS__DISABLED", "[stac]")]);
    assert_eq!(without.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&without.stderr).contains("the stac plugin is not loaded"));
}

/// `cloudify plugins` with the plugins of `dir` only, `env` and a config file of `config`.
fn plugins_listing(dir: &std::path::Path, config: &str, env: &[(&str, &str)]) -> String {
    let file = dir.join("cloudify.toml");
    std::fs::write(&file, format!("[plugins]\nsearch_exe_dir = false\n{config}")).unwrap();
    let mut command = Command::new(cloudify_bin());
    command.arg("plugins").arg("--config").arg(&file).env_remove("CLOUDIFY_CONFIG").env("CLOUDIFY_LOG", "off");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn plugins_load_only_from_where_the_operator_says_and_as_pinned() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("plugins");
    std::fs::create_dir(&folder).unwrap();
    let hello = folder.join("libcloudify_plugin_hello.so");
    std::fs::copy(fixtures().plugin_dir.join("libcloudify_plugin_hello.so"), &hello).unwrap();
    let dirs = format!("dirs = [\"{}\"]\n", folder.display());

    // Plugin folders from the environment count only when the operator opts in.
    let env_dirs = format!("[{}]", folder.display());
    let listing = plugins_listing(dir.path(), "", &[("CLOUDIFY_PLUGINS__DIRS", &env_dirs)]);
    assert!(!listing.contains("hello"), "{listing}");
    let listing = plugins_listing(
        dir.path(),
        "",
        &[("CLOUDIFY_PLUGINS__DIRS", &env_dirs), ("CLOUDIFY_ALLOW_ENV_PLUGIN_PATHS", "1")],
    );
    assert!(listing.lines().any(|l| l.starts_with("hello 0.1.0")), "{listing}");

    // A digest that differs refuses the file before it is opened; the right one loads it.
    let listing = plugins_listing(
        dir.path(),
        &format!("{dirs}[plugins.sha256]\n\"libcloudify_plugin_hello.so\" = \"{}\"\n", "0".repeat(64)),
        &[],
    );
    assert!(listing.contains("differs from the pinned"), "{listing}");
    let digest = String::from_utf8(Command::new("sha256sum").arg(&hello).output().unwrap().stdout).unwrap();
    let digest = digest.split_whitespace().next().unwrap();
    let listing = plugins_listing(
        dir.path(),
        &format!("{dirs}[plugins.sha256]\n\"libcloudify_plugin_hello.so\" = \"{digest}\"\n"),
        &[],
    );
    assert!(listing.lines().any(|l| l.starts_with("hello 0.1.0")), "{listing}");
    let listing = plugins_listing(dir.path(), &format!("{dirs}require_sha256 = true\n"), &[]);
    assert!(listing.contains("no sha256 pinned"), "{listing}");

    // A file, or a folder, that anyone may write is refused.
    std::fs::set_permissions(&hello, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(plugins_listing(dir.path(), &dirs, &[]).contains("writable by every user"));
    std::fs::set_permissions(&hello, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(plugins_listing(dir.path(), &dirs, &[]).contains("is writable by every user"));
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(plugins_listing(dir.path(), &dirs, &[]).lines().any(|l| l.starts_with("hello 0.1.0")));
}
