//! The plugin interface: user code shipped as a `cdylib` built against riffle exports one
//! versioned symbol, a [`PluginDeclaration`], through [`export_plugin!`]. The host checks the
//! declaration before it calls anything in the library: the ABI version first (read alone, so
//! a declaration of another layout is never read further), then riffle's version, the
//! compiler's and a fingerprint of the types that cross the boundary. Rust has no stable ABI,
//! so anything but an exact match is refused.

use crate::JobGraph;

/// The layout version of [`PluginDeclaration`]; always its first field.
pub const PLUGIN_ABI_VERSION: u32 = 2;

/// The symbol a plugin exports (NUL-terminated for the loader).
pub const DECLARATION_SYMBOL: &[u8] = b"riffle_plugin_declaration_v1\0";

/// riffle's version.
pub const RIFFLE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The compiler that built this copy of riffle.
pub const RUSTC_VERSION: &str = env!("RIFFLE_RUSTC_VERSION");

/// Builds a job from its arguments. A user error comes back whole, with its causes: a plugin
/// writes `Err("...".into())` or `?` on any error (ABI 2; ABI 1 returned a `String`).
pub type JobBuilder = fn(args: &[String]) -> Result<JobGraph, crate::UserError>;

/// Where a plugin registers its jobs.
pub trait PluginRegistrar {
    /// Offers job `name`.
    fn register(&mut self, name: &str, description: &str, build: JobBuilder);
}

/// What a plugin exports. `#[repr(C)]` with the ABI version first, so that field can be read
/// from any library before trusting the rest.
#[repr(C)]
pub struct PluginDeclaration {
    /// [`PLUGIN_ABI_VERSION`] of the riffle the plugin was built against.
    pub abi_version: u32,
    /// [`RIFFLE_VERSION`] of that riffle.
    pub riffle_version: &'static str,
    /// [`RUSTC_VERSION`] of that riffle.
    pub rustc_version: &'static str,
    /// [`API_FINGERPRINT`] of that riffle.
    pub api_fingerprint: u64,
    /// Registers the plugin's jobs.
    pub register: fn(&mut dyn PluginRegistrar),
}

const fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
        i += 1;
    }
    h
}

/// A fingerprint of riffle's version, the compiler and the sizes of the types a job carries
/// across the boundary: equal on both sides only for the same build of the same riffle.
pub const API_FINGERPRINT: u64 = {
    let mut h = fnv(0xcbf2_9ce4_8422_2325, RIFFLE_VERSION.as_bytes());
    h = fnv(h, RUSTC_VERSION.as_bytes());
    let sizes = [
        std::mem::size_of::<JobGraph>() as u64,
        std::mem::size_of::<crate::TaskEnv>() as u64,
        std::mem::size_of::<crate::Element>() as u64,
        std::mem::size_of::<crate::Configuration>() as u64,
        std::mem::size_of::<crate::TaskError>() as u64,
        std::mem::size_of::<Result<JobGraph, crate::UserError>>() as u64,
    ];
    let mut i = 0;
    while i < sizes.len() {
        h = fnv(h, &sizes[i].to_le_bytes());
        i += 1;
    }
    h
};

/// Exports a plugin's declaration: `riffle_api::export_plugin!(register);` with
/// `fn register(r: &mut dyn PluginRegistrar)`.
#[macro_export]
macro_rules! export_plugin {
    ($register:path) => {
        #[no_mangle]
        #[allow(non_upper_case_globals)]
        pub static riffle_plugin_declaration_v1: $crate::plugin::PluginDeclaration =
            $crate::plugin::PluginDeclaration {
                abi_version: $crate::plugin::PLUGIN_ABI_VERSION,
                riffle_version: $crate::plugin::RIFFLE_VERSION,
                rustc_version: $crate::plugin::RUSTC_VERSION,
                api_fingerprint: $crate::plugin::API_FINGERPRINT,
                register: $register,
            };
    };
}
