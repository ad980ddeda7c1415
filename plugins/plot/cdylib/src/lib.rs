//! Exports the plot plugin from a shared library.
cloudify_sdk::export_plugin!(cloudify_plot_plugin::plugin_module);
