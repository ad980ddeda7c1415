//! Exports the stac plugin from a shared library.
cloudify_sdk::export_plugin!(cloudify_stac_plugin::plugin_module);
