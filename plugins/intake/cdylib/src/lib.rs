//! Exports the intake plugin from a shared library.
cloudify_sdk::export_plugin!(cloudify_intake::plugin_module);
