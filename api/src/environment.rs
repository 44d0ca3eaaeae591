//! The entry point of the DataStream API: where sources are created and jobs are built.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigOption, Configuration, Group, OptionInfo};
use crate::error::GraphError;
use crate::error::TaskError;
use crate::graph::{
    BuiltTyped, GraphSpec, JobGraph, Node, NodeId, NodeKind, NodeOps, StreamEdge, StreamNode, TerminateHooks,
};
use crate::partition::PartitionKind;
use crate::record::Data;
use crate::source::builtin::{CollectionSource, SequenceSource};
use crate::source::text::TextFileSource;
use crate::source::{ReaderHead, Source, SourceHolder};
use crate::stream::DataStream;

/// Default records per batch on a data channel.
pub const DEFAULT_BATCH_SIZE: usize = 1024;

/// `parallelism.default`: what [`StreamEnvironment::set_parallelism`] sets.
pub const PARALLELISM: ConfigOption<u32> =
    ConfigOption::new(Group::Pipeline, "parallelism.default", 1, "parallelism of operators that set none");
/// `pipeline.max-parallelism`: what [`StreamEnvironment::set_max_parallelism`] sets.
pub const MAX_PARALLELISM: ConfigOption<u32> = ConfigOption::new(
    Group::Pipeline,
    "pipeline.max-parallelism",
    riffle_state::DEFAULT_MAX_PARALLELISM,
    "number of key groups",
);
/// `pipeline.auto-watermark-interval`: what [`StreamEnvironment::set_auto_watermark_interval`]
/// sets.
pub const AUTO_WATERMARK_INTERVAL: ConfigOption<Duration> = ConfigOption::new(
    Group::Pipeline,
    "pipeline.auto-watermark-interval",
    Duration::from_millis(200),
    "how often periodic watermarks are emitted (0: never)",
);

/// The options [`StreamEnvironment::build_job_graph`] reads.
pub(crate) const OPTIONS: &[&dyn OptionInfo] = &[
    &PARALLELISM,
    &MAX_PARALLELISM,
    &AUTO_WATERMARK_INTERVAL,
    &crate::source::text::SPLIT_SIZE,
    &crate::source::file_enumerator::MONITOR_INTERVAL,
];

pub(crate) struct GraphBuilder {
    pub(crate) nodes: Vec<StreamNode>,
    pub(crate) edges: Vec<StreamEdge>,
    pub(crate) on_terminate: TerminateHooks,
}

impl GraphBuilder {
    pub(crate) fn add_node(&mut self, name: String, kind: NodeKind, ops: Arc<dyn NodeOps>) -> NodeId {
        self.nodes.push(StreamNode { name, parallelism: None, max_node_parallelism: None, ops, kind, chainable: true });
        self.nodes.len() - 1
    }

    pub(crate) fn add_edge(&mut self, edge: StreamEdge) {
        self.edges.push(edge);
    }
}

pub(crate) type SharedBuilder = Rc<RefCell<GraphBuilder>>;

/// Builds streaming jobs. Holds the job's configuration (`parallelism.default`,
/// `pipeline.max-parallelism`, `pipeline.auto-watermark-interval`, ...).
pub struct StreamEnvironment {
    pub(crate) builder: SharedBuilder,
    config: Configuration,
}

impl Default for StreamEnvironment {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamEnvironment {
    /// An environment with default settings (parallelism 1).
    pub fn new() -> Self {
        Self::with_config(Configuration::new())
    }

    /// An environment reading its settings from `config`.
    pub fn with_config(config: Configuration) -> Self {
        Self {
            builder: Rc::new(RefCell::new(GraphBuilder {
                nodes: Vec::new(),
                edges: Vec::new(),
                on_terminate: Vec::new(),
            })),
            config,
        }
    }

    /// The job configuration.
    pub fn config(&self) -> &Configuration {
        &self.config
    }

    /// Sets a configuration key for this job.
    pub fn set_config(&mut self, key: &str, value: &str) -> &mut Self {
        self.config.set(key, value);
        self
    }

    /// Default parallelism of operators that do not set their own.
    pub fn set_parallelism(&mut self, parallelism: u32) -> &mut Self {
        self.config.set(PARALLELISM.key(), parallelism.to_string());
        self
    }

    /// Number of key groups: the upper bound of any operator's parallelism, fixed for the
    /// life of the job's state.
    pub fn set_max_parallelism(&mut self, max_parallelism: u32) -> &mut Self {
        self.config.set(MAX_PARALLELISM.key(), max_parallelism.to_string());
        self
    }

    /// How often periodic watermark generators run (200 ms by default).
    pub fn set_auto_watermark_interval(&mut self, interval: Duration) -> &mut Self {
        self.config.set(AUTO_WATERMARK_INTERVAL.key(), format!("{}ms", interval.as_millis()));
        self
    }

    /// Emits `items` in order (not parallel: one subtask).
    pub fn from_collection<T: Data + Sync + std::fmt::Debug>(&self, items: Vec<T>) -> DataStream<T> {
        let s = self.from_source(CollectionSource::new(items), "Collection Source");
        if let Some(n) = self.builder.borrow_mut().nodes.get_mut(s.node) {
            n.max_node_parallelism = Some(1);
            n.parallelism = Some(1);
        }
        s
    }

    /// The numbers `from..=to`, read in parallel in contiguous ranges.
    pub fn from_sequence(&self, from: u64, to: u64) -> DataStream<u64> {
        self.from_source(SequenceSource::new(from, to), "Sequence Source")
    }

    /// [`from_sequence`](Self::from_sequence) at most `per_second` numbers per second per
    /// source subtask (0: no limit), paced in the reader without blocking its slot's thread.
    pub fn from_sequence_paced(&self, from: u64, to: u64, per_second: u64) -> DataStream<u64> {
        self.from_source(SequenceSource::new(from, to).with_rate(per_second), "Sequence Source")
    }

    /// The benchmark's Nexmark-like bids `0..count` (bid `i` exactly as the Flink harness
    /// defines it), read in parallel in contiguous ranges.
    pub fn bids(&self, count: u64) -> DataStream<crate::generators::Bid> {
        if count == 0 {
            return self.from_collection(Vec::new()).name("Bid Generator");
        }
        self.from_sequence(0, count - 1).map(crate::generators::bid).name("Bid Generator")
    }

    /// The lines of a text file, of every file under a directory, or of the files a glob
    /// matches (`/logs/2026-*/part-*`). With `source.monitor-interval` set in the job's
    /// configuration the source is continuous, as Flink's file source with that key: the
    /// inputs are listed again every interval and each new file is read exactly once (see
    /// [`Self::monitor_text_files`]); unset, the files there at the start are read.
    pub fn read_text_file(&self, path: impl Into<PathBuf>) -> DataStream<String> {
        // A value that does not parse is logged and the source stays bounded.
        let interval = self.config.get(&crate::source::file_enumerator::MONITOR_INTERVAL).unwrap_or_else(|e| {
            tracing::warn!("{e}; the text file source reads its files once");
            None
        });
        self.text_files(path.into(), interval)
    }

    /// The lines of `path` (a file, a directory or a glob), read continuously: Flink's
    /// `readFile(format, path, PROCESS_CONTINUOUSLY, interval)`. The inputs are listed every
    /// `interval`; each file found is read once, from its first line to its end, and never
    /// again even if it changes later — so write files under a hidden name (`.name.tmp`) and
    /// rename them into place when complete. The stream never ends; the paths seen and the
    /// splits not read yet are checkpointed, so a restore reads no file twice.
    pub fn monitor_text_files(&self, path: impl Into<PathBuf>, interval: Duration) -> DataStream<String> {
        self.text_files(path.into(), Some(interval))
    }

    fn text_files(&self, path: PathBuf, interval: Option<Duration>) -> DataStream<String> {
        let name = format!("Text File Source ({})", path.display());
        // A file larger than `source.split-size` is read by several subtasks (a value that
        // does not parse is logged, and the default used).
        let split_size = self.config.get(&crate::source::text::SPLIT_SIZE).unwrap_or_else(|e| {
            tracing::warn!("{e}; files are split at the default size");
            crate::source::text::SPLIT_SIZE.default_value()
        });
        let source = TextFileSource::new(path).with_split_size(split_size.as_bytes() as u64).monitor_every(interval);
        self.from_source(source, &name)
    }

    /// A stream from any FLIP-27 source.
    pub fn from_source<T: Data, S: Source<T>>(&self, source: S, name: &str) -> DataStream<T> {
        let source = Arc::new(source);
        let holder = Arc::new(SourceHolder { source: source.clone(), _t: PhantomData });
        let src_name = name.to_string();
        let node = Node::<(), T>::new(move |ctx, next| {
            let reader = source.create_reader(ctx.subtask).map_err(|e| TaskError::new(&src_name, e.as_ref()))?;
            Ok(BuiltTyped::Source(Box::new(ReaderHead { reader, chain: next, name: src_name.clone(), emitted: 0 })))
        });
        let id = self.builder.borrow_mut().add_node(name.to_string(), NodeKind::Source(holder), Arc::new(node));
        DataStream::new(self.builder.clone(), id)
    }

    /// Builds the job graph of everything defined so far. The environment can keep being
    /// used; each call builds a new graph.
    pub fn build_job_graph(&self, name: &str) -> Result<JobGraph, GraphError> {
        let parallelism = self.config.get(&PARALLELISM).map_err(|e| GraphError::Invalid(e.to_string()))?;
        let max_parallelism = self.config.get(&MAX_PARALLELISM).map_err(|e| GraphError::Invalid(e.to_string()))?;
        if max_parallelism == 0 || max_parallelism > 32768 {
            return Err(GraphError::Invalid(format!(
                "pipeline.max-parallelism must be within 1..=32768, got {max_parallelism}"
            )));
        }
        let wm = self.config.get(&AUTO_WATERMARK_INTERVAL).map_err(|e| GraphError::Invalid(e.to_string()))?;
        let mut b = self.builder.borrow_mut();
        let nodes = b
            .nodes
            .iter()
            .map(|n| StreamNode {
                name: n.name.clone(),
                parallelism: n.parallelism,
                max_node_parallelism: n.max_node_parallelism,
                ops: n.ops.clone(),
                kind: n.kind.clone(),
                chainable: n.chainable,
            })
            .collect();
        let edges = b.edges.clone();
        let on_terminate = std::mem::take(&mut b.on_terminate);
        JobGraph::new(GraphSpec {
            name: name.to_string(),
            max_parallelism,
            config: self.config.clone(),
            nodes,
            edges,
            default_parallelism: parallelism,
            // 0 turns periodic watermarks off, as in Flink.
            watermark_interval_ms: wm.as_millis() as i64,
            on_terminate,
        })
    }
}

pub(crate) fn edge(from: NodeId, to: NodeId, input: usize, kind: Option<PartitionKind>) -> StreamEdge {
    StreamEdge { from, to, input, kind, hash: None, side_tag: None }
}
