pub mod http;
pub mod template_plugin;
