# Sourced by the bench scripts: builds the workspace, copies the binaries to "$out/bin" (so
# that rebuilding the repo during a run changes nothing) and writes a config serving the
# harness's tas and pr files. Needs: repo, out, data. Sets: serve (the harness's SERVER_CMD
# without environment).
target=${CARGO_TARGET_DIR:-$repo/target}
(cd "$repo" && cargo build --release --workspace --locked)
mkdir -p "$out/bin"
cp "$target/release/cloudify" "$target"/release/libcloudify_plugin_*.so "$out/bin/"
cat > "$out/bench.toml" <<TOML
[demo]
enabled = false

[[datasets]]
id = "tas"
path = "$data/nc/tas_day_BENCH_gn_18500101-18591231.nc"

[[datasets]]
id = "pr"
path = "$data/nc/pr_day_BENCH_gn_18500101-18541231.nc"
TOML
# No access log, like the harness's xpublish (uvicorn access_log=False): CLOUDIFY_LOG=warn.
serve="$out/bin/cloudify serve --bind 127.0.0.1:\$PORT --config $out/bench.toml"
