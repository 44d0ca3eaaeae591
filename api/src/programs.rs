//! One way to build a job graph from what a user names: [`Programs`].
//!
//! A built-in program by name, a plugin's job (library and entry), a jar uploaded over REST and
//! an application-mode job are all a [`JobOrigin`]; whoever needs a graph — the REST API, a
//! TaskManager process, a JobManager recovering its jobs, `riffle run` — asks the same
//! `Programs` for it. The built-in programs live above the runtime crates and plugin loading
//! in `riffle-cluster`, so the `riffle` binary composes one implementation
//! ([`ProgramSet`]: built-ins and a plugin loader) and hands it to each of them.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::error::{ApiError, ErrorDomain};
use crate::{JobGraph, JobOrigin, ProgramSource};

/// One argument a program takes.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProgramArg {
    /// `--name`.
    pub name: String,
    /// Its default, shown in forms.
    pub default: String,
    /// What it does.
    pub help: String,
}

/// A program a user can build by name: a built-in one, or a job a plugin offers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProgramInfo {
    /// Its name (`/programs/{name}/run`, a plugin's `--entry`).
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its arguments (none listed for a plugin's jobs: they parse their own).
    pub args: Vec<ProgramArg>,
}

/// Why a program could not be built: the narrower error of [`Programs`], a source of
/// [`ApiError::Program`].
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// No such program or entry, or arguments it does not take: the caller's to fix.
    #[error("{0}")]
    Invalid(String),
    /// A plugin library was refused (not riffle's, another build, its code failed or panicked).
    #[error("{0}")]
    Plugin(String),
    /// The program's files could not be read or written (a library, an output directory).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl ProgramError {
    /// Who is to blame: the user, except for I/O (external).
    pub fn domain(&self) -> ErrorDomain {
        match self {
            ProgramError::Invalid(_) | ProgramError::Plugin(_) => ErrorDomain::User,
            ProgramError::Io { .. } => ErrorDomain::External,
        }
    }

    /// Only I/O may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ProgramError::Io { .. })
    }
}

/// Builds job graphs from their origin: the one program abstraction (see the module docs).
pub trait Programs: Send + Sync {
    /// The programs users may build by name (the built-in ones).
    fn list(&self) -> Vec<ProgramInfo>;

    /// The graph `origin` describes, with its origin recorded on it
    /// ([`JobGraph::set_origin`]: resolved arguments, a plugin library's digest) so that
    /// another process can build it again. A built-in program's unknown name or bad arguments
    /// are [`ProgramError::Invalid`]; a plugin library is loaded once and stays loaded, since
    /// the graphs built from it run its code.
    fn build(&self, origin: &JobOrigin) -> Result<JobGraph, ApiError>;

    /// The jobs the plugin library at `library` offers (listing an uploaded jar); an error
    /// when it is not a usable riffle plugin or this implementation loads no plugins.
    fn inspect(&self, library: &Path) -> Result<Vec<ProgramInfo>, ApiError> {
        Err(ProgramError::Invalid(format!("'{}' cannot be inspected: plugins are not loaded here", library.display()))
            .into())
    }
}

impl std::fmt::Debug for dyn Programs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Programs")
    }
}

/// Any function from an origin to a graph is a `Programs` that lists nothing and loads no
/// plugins; its error (a message, another crate's error) is [`ProgramError::Invalid`].
impl<F, E> Programs for F
where
    F: Fn(&JobOrigin) -> Result<JobGraph, E> + Send + Sync,
    E: std::fmt::Display,
{
    fn list(&self) -> Vec<ProgramInfo> {
        Vec::new()
    }

    fn build(&self, origin: &JobOrigin) -> Result<JobGraph, ApiError> {
        self(origin).map_err(|e| ProgramError::Invalid(e.to_string()).into())
    }
}

/// Built-in programs and plugin jobs behind one [`Programs`]: built-in origins go to
/// `builtins`, plugin origins and inspection to `plugins`; the list is both lists.
#[derive(Clone)]
pub struct ProgramSet {
    builtins: Arc<dyn Programs>,
    plugins: Arc<dyn Programs>,
}

impl ProgramSet {
    /// `builtins` and `plugins` as one.
    pub fn new(builtins: Arc<dyn Programs>, plugins: Arc<dyn Programs>) -> Self {
        Self { builtins, plugins }
    }
}

impl std::fmt::Debug for ProgramSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgramSet")
    }
}

impl Programs for ProgramSet {
    fn list(&self) -> Vec<ProgramInfo> {
        let mut all = self.builtins.list();
        all.extend(self.plugins.list());
        all
    }

    /// Builds with the program's own code, then lays the origin's configuration over what the
    /// program set and records it in the graph's origin, so a graph built again from that
    /// origin (another process, another leader) has the same options.
    fn build(&self, origin: &JobOrigin) -> Result<JobGraph, ApiError> {
        let mut graph = match origin.program {
            ProgramSource::Builtin(_) => self.builtins.build(origin),
            ProgramSource::Plugin { .. } => self.plugins.build(origin),
        }?;
        graph.config.merge(&origin.config);
        if let Some(mut recorded) = graph.origin().cloned() {
            recorded.config = origin.config.clone();
            graph.set_origin(recorded);
        }
        Ok(graph)
    }

    fn inspect(&self, library: &Path) -> Result<Vec<ProgramInfo>, ApiError> {
        self.plugins.inspect(library)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StreamEnvironment;

    fn graph(name: &str) -> Result<JobGraph, ApiError> {
        let env = StreamEnvironment::new();
        env.from_sequence(0, 1).discard();
        Ok(env.build_job_graph(name)?)
    }

    struct Builtins;

    impl Programs for Builtins {
        fn list(&self) -> Vec<ProgramInfo> {
            vec![ProgramInfo { name: "one".into(), description: "a job".into(), args: Vec::new() }]
        }

        fn build(&self, origin: &JobOrigin) -> Result<JobGraph, ApiError> {
            match &origin.program {
                ProgramSource::Builtin(n) if n == "one" => graph("builtin one"),
                other => Err(ProgramError::Invalid(format!("no program {other:?}")).into()),
            }
        }
    }

    #[test]
    fn a_set_routes_by_origin() {
        let plugins = |o: &JobOrigin| match &o.program {
            ProgramSource::Plugin { entry, .. } => graph(&format!("plugin {entry}")).map_err(|e| e.to_string()),
            _ => Err("not a plugin".to_string()),
        };
        let set = ProgramSet::new(Arc::new(Builtins), Arc::new(plugins));
        assert_eq!(set.list().len(), 1);
        assert_eq!(set.build(&JobOrigin::builtin("one", &[], None)).unwrap().name, "builtin one");
        assert_eq!(set.build(&JobOrigin::plugin("/lib.so", "e", &[])).unwrap().name, "plugin e");
        let e = set.build(&JobOrigin::builtin("two", &[], None)).unwrap_err();
        assert_eq!((e.domain(), e.is_retryable()), (ErrorDomain::User, false));
        assert!(set.inspect(Path::new("/lib.so")).unwrap_err().to_string().contains("plugins are not loaded here"));
    }

    #[test]
    fn domains() {
        let io =
            ApiError::from(ProgramError::Io { what: "cannot read x".into(), source: std::io::Error::other("gone") });
        assert_eq!(
            (io.domain(), io.is_retryable(), io.to_string()),
            (ErrorDomain::External, true, "cannot read x: gone".into())
        );
        let p = ApiError::from(ProgramError::Plugin("refused".into()));
        assert_eq!((p.domain(), p.is_retryable(), p.to_string()), (ErrorDomain::User, false, "refused".into()));
    }
}
