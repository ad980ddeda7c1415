//! Exports the diagnostics plugin from a shared library.
cloudify_sdk::export_plugin!(cloudify_diagnostics_plugin::plugin_module);
