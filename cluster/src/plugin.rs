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

use crate::artifacts::{FetchSettings, Location};
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
            .map_err(|source| ClusterError::PluginJob { entry: entry.to_string(), source })
    }
}

/// The plugin loader as [`Programs`]: builds plugin origins, loading each library once and
/// keeping it loaded for the life of the process (jobs built from it run its code), and lists
/// a library's jobs. It lists no programs and builds no built-in one: the `riffle` binary pairs
/// it with the built-in programs in a [`riffle_api::ProgramSet`].
///
/// A plugin origin's path is an artifact location ([`crate::artifacts`]):
/// - a library file, or a `file://` URL of one: loaded where it is; the origin keeps the
///   location as given (a TaskManager process reads a `file://` URL from its own files, and
///   asks the JobManager for a path);
/// - an `http://` or `https://` URL: fetched into the artifact cache (once: a URL fetched
///   before is served from the cache) and loaded from there; the origin keeps the URL and the
///   library's digest, and a TaskManager fetches the URL itself unless its own cache has that
///   digest;
/// - a directory (a path or a `file://` URL): every library in it ([`crate::artifacts::libraries_in`]:
///   `*.so` files directly in it, in name order, other files ignored, none is an error) is
///   loaded, each must be a riffle plugin, and the directory offers all their jobs. The job
///   named by the entry must be offered by exactly one of them (two offering it is an error
///   naming both); the origin names that library's path, and only that library, whose code the
///   job runs, is shipped to TaskManagers.
#[derive(Default)]
pub struct LoadedPlugins {
    loaded: std::sync::Mutex<std::collections::HashMap<PathBuf, Arc<Plugin>>>,
    fetch: Option<FetchSettings>,
}

/// A library an artifact location stands for, made local.
struct Resolved {
    /// Where it is loaded from.
    local: PathBuf,
    /// What a job's origin records: the location to get it from again.
    origin: String,
    /// Its digest, when fetching computed it already.
    digest: Option<String>,
}

impl LoadedPlugins {
    /// A loader that fetches remote artifacts into `settings`' cache within its limits (without:
    /// [`crate::artifacts::process_settings`] at each fetch).
    pub fn with_fetch(settings: FetchSettings) -> Self {
        Self { loaded: Default::default(), fetch: Some(settings) }
    }

    /// The libraries at `location`, made local.
    fn resolve(&self, location: &str) -> Result<Vec<Resolved>, ClusterError> {
        match crate::artifacts::parse_location(location)? {
            Location::Http(url) => {
                let settings = self.fetch.clone().unwrap_or_else(crate::artifacts::process_settings);
                let f = crate::artifacts::fetch_into_cache(&url, &settings)?;
                Ok(vec![Resolved { local: f.path, origin: url, digest: Some(f.digest) }])
            }
            Location::Local(path) if path.is_dir() => Ok(crate::artifacts::libraries_in(&path)?
                .into_iter()
                .map(|lib| Resolved { origin: lib.display().to_string(), local: lib, digest: None })
                .collect()),
            Location::Local(path) => Ok(vec![Resolved { local: path, origin: location.to_string(), digest: None }]),
        }
    }

    /// Builds job `entry` of the plugin at `location` and records its origin (the library's
    /// location and digest): what a TaskManager process does with the cached copy of a job's
    /// library, and what the JobManager side does with an upload or a URL.
    fn build_origin(&self, location: &str, entry: &str, args: &[String]) -> Result<JobGraph, ClusterError> {
        let libraries = self.resolve(location)?;
        let mut offering = Vec::new();
        let mut offered = Vec::new();
        for r in &libraries {
            let plugin = self.get(&r.local)?;
            if plugin.jobs().iter().any(|j| j.name == entry) {
                offering.push((r, plugin.clone()));
            }
            offered.extend(plugin.jobs().iter().map(|j| j.name.clone()));
        }
        let (library, plugin) = match offering.len() {
            1 => offering.remove(0),
            0 if libraries.len() == 1 => (&libraries[0], self.get(&libraries[0].local)?),
            0 => {
                return Err(ClusterError::Plugin(format!(
                    "no library in {location} has a job '{entry}' (they offer: {})",
                    offered.join(", ")
                )))
            }
            _ => {
                let names: Vec<String> = offering.iter().map(|(r, _)| r.local.display().to_string()).collect();
                return Err(ClusterError::Plugin(format!(
                    "job '{entry}' is offered by more than one library in {location}: {}",
                    names.join(", ")
                )));
            }
        };
        let mut graph = plugin.build(entry, args)?;
        let digest = match &library.digest {
            Some(d) => d.clone(),
            None => crate::artifacts::digest_of_file(&library.local).map_err(|e| ClusterError::Io {
                what: format!("cannot read {}", library.local.display()),
                source: e,
            })?,
        };
        graph.set_origin(riffle_api::JobOrigin {
            program: riffle_api::ProgramSource::Plugin {
                path: library.origin.clone(),
                entry: entry.to_string(),
                digest,
            },
            args: args.to_vec(),
            parallelism: None,
            config: Default::default(),
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
        // A network failure may pass: the environment's, retryable.
        ClusterError::Fetch(e) if e.is_retryable() => {
            ProgramError::Io { what: "cannot fetch the plugin library".into(), source: std::io::Error::other(e) }.into()
        }
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

    /// The jobs of the library, directory or URL `library` (see [`LoadedPlugins`]).
    fn inspect(&self, library: &Path) -> Result<Vec<ProgramInfo>, ApiError> {
        let info =
            |j: &PluginJob| ProgramInfo { name: j.name.clone(), description: j.description.clone(), args: Vec::new() };
        let mut jobs = Vec::new();
        for r in self.resolve(&library.to_string_lossy()).map_err(program_error)? {
            jobs.extend(self.get(&r.local).map_err(program_error)?.jobs().iter().map(info));
        }
        Ok(jobs)
    }
}
