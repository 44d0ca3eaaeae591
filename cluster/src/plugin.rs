//! Loading user code shipped as a `cdylib` (see `riffle_api::plugin`): the declaration is
//! checked field by field — ABI version alone first — before anything in the library is
//! called; a library that is not a riffle plugin, or one built by another riffle or compiler,
//! is refused with a message that says which.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use riffle_api::plugin::{
    JobBuilder, PluginDeclaration, PluginRegistrar, API_FINGERPRINT, DECLARATION_SYMBOL, PLUGIN_ABI_VERSION,
    RIFFLE_VERSION, RUSTC_VERSION,
};
use riffle_api::{ApiError, JobGraph, JobOrigin, ProgramError, ProgramInfo, ProgramSource, Programs};

use crate::error::ClusterError;

/// A job a plugin offers.
#[derive(Debug, Clone)]
pub struct PluginJob {
    /// Its name (`--entry`).
    pub name: String,
    /// What it does.
    pub description: String,
    build: JobBuilder,
}

/// A loaded plugin. Job graphs it built run its code: keep it alive while they run.
pub struct Plugin {
    path: PathBuf,
    jobs: Vec<PluginJob>,
    _library: Arc<libloading::Library>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("path", &self.path).field("jobs", &self.jobs).finish()
    }
}

struct Collect(Vec<PluginJob>);

impl PluginRegistrar for Collect {
    fn register(&mut self, name: &str, description: &str, build: JobBuilder) {
        self.0.push(PluginJob { name: name.to_string(), description: description.to_string(), build });
    }
}

fn refused(path: &Path, why: impl std::fmt::Display) -> ClusterError {
    ClusterError::Plugin(format!("'{}' is refused as a plugin: {why}", path.display()))
}

/// Loads the plugin at `path`.
pub fn load(path: &Path) -> Result<Plugin, ClusterError> {
    let meta = std::fs::metadata(path).map_err(|e| refused(path, format!("cannot read it ({e})")))?;
    if !meta.is_file() {
        return Err(refused(path, "it is not a file"));
    }
    // SAFETY: loading a library runs its initialisers; the user named this file as riffle
    // user code, which runs in this process anyway. Nothing else in it is called before its
    // declaration passed the checks below.
    let library = unsafe { libloading::Library::new(path) }
        .map_err(|e| refused(path, format!("it is not a loadable library ({e})")))?;
    // SAFETY: the symbol is looked up as an address only; it is not dereferenced here.
    let symbol = unsafe { library.get::<*const PluginDeclaration>(DECLARATION_SYMBOL) }
        .map_err(|_| refused(path, "it exports no riffle plugin declaration (riffle_api::export_plugin!)"))?;
    let declaration: *const PluginDeclaration = *symbol;
    if declaration.is_null() {
        return Err(refused(path, "its declaration is a null pointer"));
    }
    // SAFETY: the symbol is the address of the exported static; every declaration layout
    // starts with the u32 ABI version (repr(C)), so reading that field alone is valid for any
    // riffle plugin, and the rest is read only when the layout is ours.
    let abi = unsafe { std::ptr::read(declaration.cast::<u32>()) };
    if abi != PLUGIN_ABI_VERSION {
        return Err(refused(path, format!("it declares plugin ABI {abi}, this riffle reads {PLUGIN_ABI_VERSION}")));
    }
    // SAFETY: same ABI version: the declaration has our layout and lives as long as `library`.
    let declaration: &PluginDeclaration = unsafe { &*declaration };
    if declaration.riffle_version != RIFFLE_VERSION {
        return Err(refused(
            path,
            format!("it was built against riffle {}, this is riffle {RIFFLE_VERSION}", declaration.riffle_version),
        ));
    }
    if declaration.rustc_version != RUSTC_VERSION {
        return Err(refused(
            path,
            format!("it was built by {}, this riffle by {RUSTC_VERSION}", declaration.rustc_version),
        ));
    }
    if declaration.api_fingerprint != API_FINGERPRINT {
        return Err(refused(path, "it was built against a different build of riffle's API (fingerprint mismatch)"));
    }
    let mut jobs = Collect(Vec::new());
    let register = declaration.register;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| register(&mut jobs)))
        .map_err(|_| refused(path, "its registration panicked"))?;
    Ok(Plugin { path: path.to_path_buf(), jobs: jobs.0, _library: Arc::new(library) })
}

impl Plugin {
    /// The jobs it offers.
    pub fn jobs(&self) -> &[PluginJob] {
        &self.jobs
    }

    /// Builds job `entry` from `args`.
    pub fn build(&self, entry: &str, args: &[String]) -> Result<JobGraph, ClusterError> {
        let job = self.jobs.iter().find(|j| j.name == entry).ok_or_else(|| {
            let names: Vec<&str> = self.jobs.iter().map(|j| j.name.as_str()).collect();
            ClusterError::Plugin(format!(
                "{} has no job '{entry}' (it offers: {})",
                self.path.display(),
                names.join(", ")
            ))
        })?;
        let build = job.build;
        std::panic::catch_unwind(|| build(args))
            .map_err(|_| ClusterError::Plugin(format!("building job '{entry}' panicked")))?
            .map_err(|e| ClusterError::Plugin(format!("job '{entry}': {e}")))
    }
}

/// The plugin loader as [`Programs`]: builds plugin origins, loading each library once and
/// keeping it loaded for the life of the process (jobs built from it run its code), and lists
/// a library's jobs. It lists no programs and builds no built-in one: the `riffle` binary pairs
/// it with the built-in programs in a [`riffle_api::ProgramSet`].
#[derive(Default)]
pub struct LoadedPlugins {
    loaded: std::sync::Mutex<std::collections::HashMap<PathBuf, Arc<Plugin>>>,
}

impl LoadedPlugins {
    /// Builds job `entry` of the plugin at `path` and records its origin (library path and
    /// digest): what a TaskManager process does with the cached copy of a job's library, and
    /// what the JobManager side does with an upload.
    fn build_origin(&self, path: &str, entry: &str, args: &[String]) -> Result<JobGraph, ClusterError> {
        let path = Path::new(path);
        let mut graph = self.get(path)?.build(entry, args)?;
        let digest = crate::artifacts::digest_of_file(path)
            .map_err(|e| ClusterError::Io { what: format!("cannot read {}", path.display()), source: e })?;
        graph.set_origin(riffle_api::JobOrigin {
            program: riffle_api::ProgramSource::Plugin {
                path: path.display().to_string(),
                entry: entry.to_string(),
                digest,
            },
            args: args.to_vec(),
            parallelism: None,
        });
        Ok(graph)
    }

    fn get(&self, path: &Path) -> Result<Arc<Plugin>, ClusterError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = loaded.get(path) {
            return Ok(p.clone());
        }
        let p = Arc::new(load(path)?);
        loaded.insert(path.to_path_buf(), p.clone());
        Ok(p)
    }
}

/// A plugin's error as a program error: unreadable files are the environment's, everything
/// else (refused, no such job, the job's own error) the user's.
fn program_error(e: ClusterError) -> ApiError {
    match e {
        ClusterError::Io { what, source } => ProgramError::Io { what, source }.into(),
        ClusterError::Build(e) => e,
        e => ProgramError::Plugin(e.to_string()).into(),
    }
}

impl Programs for LoadedPlugins {
    fn list(&self) -> Vec<ProgramInfo> {
        Vec::new()
    }

    fn build(&self, origin: &JobOrigin) -> Result<JobGraph, ApiError> {
        match &origin.program {
            ProgramSource::Plugin { path, entry, .. } => {
                self.build_origin(path, entry, &origin.args).map_err(program_error)
            }
            ProgramSource::Builtin(name) => Err(ProgramError::Invalid(format!("no program named '{name}'")).into()),
        }
    }

    fn inspect(&self, library: &Path) -> Result<Vec<ProgramInfo>, ApiError> {
        let plugin = self.get(library).map_err(program_error)?;
        let info =
            |j: &PluginJob| ProgramInfo { name: j.name.clone(), description: j.description.clone(), args: Vec::new() };
        Ok(plugin.jobs().iter().map(info).collect())
    }
}
