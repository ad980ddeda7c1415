//! Exports the icechunk plugin from a shared library.
cloudify_sdk::export_plugin!(cloudify_icechunk_plugin::plugin_module);
