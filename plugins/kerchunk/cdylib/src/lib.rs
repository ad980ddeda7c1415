//! Exports the kerchunk plugin from a shared library.
cloudify_sdk::export_plugin!(cloudify_kerchunk_plugin::plugin_module);
