//! Exports the datapoint plugin from a shared library.
cloudify_sdk::export_plugin!(cloudify_datapoint_plugin::plugin_module);
