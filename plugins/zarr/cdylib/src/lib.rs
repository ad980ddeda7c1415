//! Exports the zarr plugin from a shared library.
cloudify_sdk::export_plugin!(cloudify_zarr_plugin::plugin_module);
