//! Exports the web plugin from a shared library.
cloudify_sdk::export_plugin!(cloudify_web_plugin::plugin_module);
