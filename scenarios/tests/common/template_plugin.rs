//! Where the template plugin's shared library is: built as a dev-dependency, in the test
//! binary's `deps/` directory (or next to it when the template was a build root). Shared with
//! the `riffle` binary's tests (`tests/common/mod.rs` includes this file).
#![allow(dead_code)] // not every test binary loads the plugin

use std::path::PathBuf;

/// The template plugin's shared library.
pub fn template_plugin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    for dir in [deps, deps.parent().unwrap()] {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("libriffle_plugin_template") && n.ends_with(std::env::consts::DLL_SUFFIX) {
                return e.path();
            }
        }
    }
    panic!("the template plugin's library was not built next to {}", exe.display());
}
