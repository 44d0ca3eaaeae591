//! The job graph: operators (nodes) and the edges between them, fused into *vertices* by
//! operator chaining, and instantiated per subtask by the runtime.
//!
//! Nodes keep their types behind [`NodeOps`], a small type-erased interface built in typed
//! code by the DataStream API: it can build the node's chain link given its downstream, make
//! a writer for an outgoing edge, fan out, and turn a link into a vertex head. The runtime
//! never sees a record type.

use std::any::Any;
use std::sync::{Arc, Mutex};

use crate::error::{GraphError, TaskError};
use crate::functions::{SideOut, TypedSide};
use crate::head::{OneInputHead, VertexHead};
use crate::link::{Fanout, Input, Nowhere, OperatorMarker};
use crate::metrics::JobCounters;
use crate::operators::OpId;
use crate::partition::{
    consumers_of, producers_of, EdgeWriter, FlushRegistry, KeyGroupRouter, PartitionKind, Partitioner,
    SharedEdgeWriter, SharedOutbox,
};
use crate::source::{ErasedSource, SourceHead};

/// Index of a node (operator) in the graph.
pub type NodeId = usize;

/// A type-erased `Box<dyn Input<T>>`.
pub(crate) type Erased = Box<dyn Any>;

/// What building a node gives, typed by its input.
pub(crate) enum BuiltTyped<I> {
    /// A chainable link taking `I`.
    Link(Box<dyn Input<I>>),
    /// A vertex head of its own (multi-input operators).
    Head(Box<dyn VertexHead>),
    /// A source reader head.
    Source(Box<dyn SourceHead>),
}

pub(crate) enum Built {
    Link(Erased),
    Head(Box<dyn VertexHead>),
    Source(Box<dyn SourceHead>),
}

/// Everything an operator needs to instantiate itself in one subtask.
pub struct LinkContext {
    /// The subtask index.
    pub subtask: u32,
    /// The operator's parallelism.
    pub parallelism: u32,
    /// The job's max parallelism (number of key groups).
    pub max_parallelism: u32,
    /// Name and position, for errors.
    pub id: OpId,
    /// Job counters.
    pub counters: Arc<JobCounters>,
    /// Side outputs of this operator, by tag.
    pub side_outputs: Vec<(String, Box<dyn SideOut>)>,
    /// `pipeline.auto-watermark-interval` in ms.
    pub watermark_interval_ms: i64,
    /// Where keyed state of process functions lives.
    pub state_backend: riffle_state::BackendConfig,
    /// The subtask's final-checkpoint flags (two-phase-commit sinks want one).
    pub final_checkpoint: crate::final_checkpoint::FinalCheckpoint,
}

/// Parameters of a writer for one outgoing edge of one subtask.
pub(crate) struct WriterSpec {
    pub(crate) kind: PartitionKind,
    pub(crate) hash: Option<Arc<dyn Any + Send + Sync>>,
    pub(crate) targets: Vec<u32>,
    pub(crate) channel_base: usize,
    pub(crate) subtask: u32,
    pub(crate) consumer_parallelism: u32,
    pub(crate) max_parallelism: u32,
    pub(crate) batch_size: usize,
    pub(crate) outbox: SharedOutbox,
    pub(crate) flush: FlushRegistry,
}

/// The typed behaviour of a node behind a type-erased face.
pub(crate) trait NodeOps: Send + Sync {
    fn build(&self, ctx: LinkContext, out: Erased) -> Result<Built, TaskError>;
    fn fanout(&self, outs: Vec<Erased>) -> Erased;
    fn writer(&self, spec: WriterSpec) -> Erased;
    fn make_head(&self, link: Erased, name: &str) -> Result<Box<dyn VertexHead>, TaskError>;
    fn make_side(&self, link: Erased) -> Result<Box<dyn SideOut>, TaskError>;
    /// Decodes what `encode_output_into` wrote, as the batch it was.
    fn decode_output(&self, bytes: &[u8], name: &str) -> Result<Box<dyn Any + Send>, TaskError>;
    /// Encodes a batch this node emitted (a `Vec<StreamRecord<O>>`) for another process,
    /// appending to `out`; `decode_output` reads it back.
    fn encode_output_into(&self, batch: &(dyn Any + Send), name: &str, out: &mut Vec<u8>) -> Result<(), TaskError>;
}

type BuildFn<I, O> = dyn Fn(LinkContext, Box<dyn Input<O>>) -> Result<BuiltTyped<I>, TaskError> + Send + Sync;

/// A node taking `I` and emitting `O`.
pub(crate) struct Node<I, O> {
    build: Box<BuildFn<I, O>>,
}

impl<I, O> Node<I, O> {
    pub(crate) fn new<F>(f: F) -> Self
    where
        F: Fn(LinkContext, Box<dyn Input<O>>) -> Result<BuiltTyped<I>, TaskError> + Send + Sync + 'static,
    {
        Self { build: Box::new(f) }
    }
}

fn wrong_type(what: &str) -> TaskError {
    TaskError::msg("job graph", format!("internal error: {what} has an unexpected type"))
}

impl<
        I: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
        O: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    > NodeOps for Node<I, O>
{
    fn decode_output(&self, bytes: &[u8], name: &str) -> Result<Box<dyn Any + Send>, TaskError> {
        crate::head::decode_wire_batch::<O>(bytes, name)
    }

    fn encode_output_into(&self, batch: &(dyn Any + Send), name: &str, out: &mut Vec<u8>) -> Result<(), TaskError> {
        crate::head::encode_wire_batch_into::<O>(batch, name, out)
    }

    fn build(&self, ctx: LinkContext, out: Erased) -> Result<Built, TaskError> {
        let out = *out.downcast::<Box<dyn Input<O>>>().map_err(|_| wrong_type("a node's output"))?;
        // Heads and sources are where the runtime enters user code: guarded here, in the
        // library that built the job (see `panic_guard`).
        Ok(match (self.build)(ctx, out)? {
            BuiltTyped::Link(l) => Built::Link(Box::new(l)),
            BuiltTyped::Head(h) => Built::Head(Box::new(crate::panic_guard::GuardedHead { inner: h })),
            BuiltTyped::Source(s) => Built::Source(Box::new(crate::panic_guard::GuardedSource { inner: s })),
        })
    }

    fn fanout(&self, outs: Vec<Erased>) -> Erased {
        let mut typed: Vec<Box<dyn Input<O>>> =
            outs.into_iter().filter_map(|o| o.downcast::<Box<dyn Input<O>>>().ok().map(|b| *b)).collect();
        let one: Box<dyn Input<O>> = match typed.len() {
            0 => Box::new(Nowhere),
            1 => typed.remove(0),
            _ => Box::new(Fanout::new(typed)),
        };
        Box::new(one)
    }

    fn writer(&self, spec: WriterSpec) -> Erased {
        let partitioner = match spec.kind {
            PartitionKind::Forward => Partitioner::Forward,
            PartitionKind::Rebalance | PartitionKind::Rescale => {
                Partitioner::RoundRobin(spec.subtask as usize % spec.targets.len().max(1))
            }
            PartitionKind::Broadcast => Partitioner::Broadcast,
            PartitionKind::Hash => {
                match spec.hash.as_ref().and_then(|h| h.downcast_ref::<Arc<dyn Fn(&O) -> u64 + Send + Sync>>()) {
                    Some(h) => Partitioner::Hash(KeyGroupRouter::new(
                        h.clone(),
                        spec.max_parallelism,
                        spec.consumer_parallelism,
                    )),
                    None => Partitioner::RoundRobin(0),
                }
            }
        };
        let w = EdgeWriter::new(partitioner, spec.targets, spec.channel_base, spec.batch_size, spec.outbox, spec.flush);
        let link: Box<dyn Input<O>> = Box::new(SharedEdgeWriter::new(w));
        Box::new(link)
    }

    fn make_head(&self, link: Erased, name: &str) -> Result<Box<dyn VertexHead>, TaskError> {
        let link = *link.downcast::<Box<dyn Input<I>>>().map_err(|_| wrong_type("a vertex head"))?;
        let head = Box::new(OneInputHead { link, name: name.to_string() });
        Ok(Box::new(crate::panic_guard::GuardedHead { inner: head }))
    }

    fn make_side(&self, link: Erased) -> Result<Box<dyn SideOut>, TaskError> {
        let link = *link.downcast::<Box<dyn Input<I>>>().map_err(|_| wrong_type("a side output"))?;
        Ok(Box::new(TypedSide(link)))
    }
}

/// What kind of operator a node is.
#[derive(Clone)]
pub(crate) enum NodeKind {
    Source(Arc<dyn ErasedSource>),
    OneInput,
    MultiInput,
    SideOutput,
}

/// An operator of the graph.
pub(crate) struct StreamNode {
    pub(crate) name: String,
    pub(crate) parallelism: Option<u32>,
    pub(crate) max_node_parallelism: Option<u32>,
    pub(crate) ops: Arc<dyn NodeOps>,
    pub(crate) kind: NodeKind,
    pub(crate) chainable: bool,
}

/// A connection between two operators.
#[derive(Clone)]
pub(crate) struct StreamEdge {
    pub(crate) from: NodeId,
    pub(crate) to: NodeId,
    pub(crate) input: usize,
    pub(crate) kind: Option<PartitionKind>,
    pub(crate) hash: Option<Arc<dyn Any + Send + Sync>>,
    pub(crate) side_tag: Option<String>,
}

/// Identifies one data channel: edge, producer subtask, consumer subtask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ChannelKey {
    /// The edge (index into the job graph's edges).
    pub edge: u32,
    /// The producing subtask.
    pub producer: u32,
    /// The consuming subtask.
    pub consumer: u32,
}

/// An input channel of a subtask and the logical input it feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputChannel {
    /// The channel.
    pub key: ChannelKey,
    /// The logical input (0 for one-input vertices).
    pub input: usize,
}

/// A chain of operators that runs fused in one subtask: the unit of scheduling.
#[derive(Debug, Clone)]
pub struct JobVertex {
    /// Index in [`JobGraph::vertices`].
    pub id: usize,
    /// The chained operators' names, joined by " -> ".
    pub name: String,
    /// Number of subtasks.
    pub parallelism: u32,
    /// Whether the vertex starts with a source.
    pub is_source: bool,
    /// The nodes in the vertex, head first.
    pub nodes: Vec<NodeId>,
    pub(crate) head: NodeId,
    pub(crate) input_edges: Vec<usize>,
    /// Number of logical inputs.
    pub num_inputs: usize,
}

/// A vertex instantiated for one subtask: its head and the channels its writers use.
pub struct VertexInstance {
    /// What the runtime drives.
    pub head: HeadKind,
    /// Output channels in writer order (the outbox refers to them by index).
    pub output_channels: Vec<ChannelKey>,
}

/// The two kinds of vertex heads.
pub enum HeadKind {
    /// Reads from a FLIP-27 source reader.
    Source(Box<dyn SourceHead>),
    /// Reads from input channels.
    Operators(Box<dyn VertexHead>),
}

/// The per-subtask environment a vertex is instantiated in.
pub struct TaskEnv {
    /// Where writers leave batches.
    pub outbox: SharedOutbox,
    /// Writers to flush when the subtask is about to wait.
    pub flush: FlushRegistry,
    /// Which operator runs user code (panic attribution).
    pub marker: OperatorMarker,
    /// Job counters.
    pub counters: Arc<JobCounters>,
    /// Records per batch on data channels.
    pub batch_size: usize,
    /// Where keyed state of process functions lives (`state.backend` and its options).
    pub state_backend: riffle_state::BackendConfig,
    /// Whether the subtask waits for a checkpoint after its end of input (FLIP-147).
    pub final_checkpoint: crate::final_checkpoint::FinalCheckpoint,
}

/// Callbacks run when the job reaches a terminal state.
pub(crate) type TerminateHooks = Vec<Box<dyn FnOnce() + Send>>;

/// What the environment hands over to build a graph.
pub(crate) struct GraphSpec {
    pub(crate) name: String,
    pub(crate) max_parallelism: u32,
    pub(crate) config: crate::config::Configuration,
    pub(crate) nodes: Vec<StreamNode>,
    pub(crate) edges: Vec<StreamEdge>,
    pub(crate) default_parallelism: u32,
    pub(crate) watermark_interval_ms: i64,
    pub(crate) on_terminate: TerminateHooks,
}

/// A job: its operators, edges and vertices. Shared (`Arc`) by every subtask of the job.
pub struct JobGraph {
    /// The job's name.
    pub name: String,
    /// Number of key groups.
    pub max_parallelism: u32,
    /// Job-level configuration (overrides the cluster's for this job).
    pub config: crate::config::Configuration,
    pub(crate) nodes: Vec<StreamNode>,
    pub(crate) edges: Vec<StreamEdge>,
    pub(crate) vertices: Vec<JobVertex>,
    pub(crate) node_vertex: Vec<usize>,
    pub(crate) watermark_interval_ms: i64,
    pub(crate) on_terminate: Mutex<TerminateHooks>,
    /// How to build this graph again in another process (None: built by code only this
    /// process has, so it can only run here).
    origin: Option<crate::origin::JobOrigin>,
}

impl std::fmt::Debug for JobGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobGraph").field("name", &self.name).field("vertices", &self.vertices).finish()
    }
}

impl JobGraph {
    /// Encodes a batch of records travelling on `edge` for another process (the network data
    /// plane), appending to `out` (a frame's buffer); only the graph knows the edge's record
    /// type.
    pub fn encode_edge_batch_into(
        &self,
        edge: u32,
        batch: &(dyn Any + Send),
        out: &mut Vec<u8>,
    ) -> Result<(), TaskError> {
        let (ops, name) = self.edge_producer(edge)?;
        ops.encode_output_into(batch, name, out)
    }

    /// Decodes what [`JobGraph::encode_edge_batch_into`] wrote, as the batch it was.
    pub fn decode_edge_batch(&self, edge: u32, bytes: &[u8]) -> Result<Box<dyn Any + Send>, TaskError> {
        let (ops, name) = self.edge_producer(edge)?;
        ops.decode_output(bytes, name)
    }

    /// The producing and consuming vertex of `edge`.
    pub fn edge_vertices(&self, edge: u32) -> Option<(usize, usize)> {
        let e = self.edges.get(edge as usize)?;
        Some((*self.node_vertex.get(e.from)?, *self.node_vertex.get(e.to)?))
    }

    fn edge_producer(&self, edge: u32) -> Result<(&Arc<dyn NodeOps>, &str), TaskError> {
        let e = self
            .edges
            .get(edge as usize)
            .ok_or_else(|| TaskError::msg("job graph", format!("no edge {edge} in job '{}'", self.name)))?;
        let n = &self.nodes[e.from];
        Ok((&n.ops, n.name.as_str()))
    }

    /// How to build this graph in another process, if it can be.
    pub fn origin(&self) -> Option<&crate::origin::JobOrigin> {
        self.origin.as_ref()
    }

    /// Records how this graph was built (builders of programs that TaskManager processes
    /// can build too: the built-in catalog, plugins).
    pub fn set_origin(&mut self, origin: crate::origin::JobOrigin) {
        self.origin = Some(origin);
    }

    pub(crate) fn new(spec: GraphSpec) -> Result<Self, GraphError> {
        let GraphSpec {
            name,
            max_parallelism,
            config,
            nodes,
            mut edges,
            default_parallelism,
            watermark_interval_ms,
            on_terminate,
        } = spec;
        if nodes.is_empty() {
            return Err(GraphError::Empty("no operators were defined".into()));
        }
        if !nodes.iter().any(|n| matches!(n.kind, NodeKind::Source(_))) {
            return Err(GraphError::Empty("the job has no source".into()));
        }
        // Resolve parallelism: side outputs inherit their parent's.
        let mut par: Vec<u32> = nodes.iter().map(|n| n.parallelism.unwrap_or(default_parallelism)).collect();
        for e in &edges {
            if e.side_tag.is_some() {
                par[e.to] = par[e.from];
            }
        }
        for (i, n) in nodes.iter().enumerate() {
            if par[i] == 0 || par[i] > max_parallelism {
                return Err(GraphError::Parallelism {
                    operator: n.name.clone(),
                    detail: format!("{} is not within 1..={max_parallelism} (max parallelism)", par[i]),
                });
            }
            if let Some(m) = n.max_node_parallelism {
                if par[i] > m {
                    return Err(GraphError::Parallelism {
                        operator: n.name.clone(),
                        detail: format!("this operator is not parallel; parallelism must be {m}, not {}", par[i]),
                    });
                }
            }
        }
        // Resolve partitioning: forward where parallelism matches, rebalance otherwise.
        for e in edges.iter_mut() {
            let same = par[e.from] == par[e.to];
            match e.kind {
                None => e.kind = Some(if same { PartitionKind::Forward } else { PartitionKind::Rebalance }),
                Some(PartitionKind::Forward) if !same => {
                    return Err(GraphError::Invalid(format!(
                    "forward partitioning from '{}' (parallelism {}) to '{}' (parallelism {}) needs equal parallelism",
                    nodes[e.from].name, par[e.from], nodes[e.to].name, par[e.to]
                )))
                }
                _ => {}
            }
        }
        let mut nodes = nodes;
        for (i, n) in nodes.iter_mut().enumerate() {
            n.parallelism = Some(par[i]);
        }
        // Chaining: a one-input node with a single forward edge from a node of equal
        // parallelism runs in its predecessor's vertex.
        let n = nodes.len();
        let mut chained = vec![false; n];
        for (i, node) in nodes.iter().enumerate() {
            let ins: Vec<&StreamEdge> = edges.iter().filter(|e| e.to == i).collect();
            chained[i] = match node.kind {
                NodeKind::SideOutput => true,
                NodeKind::OneInput => {
                    node.chainable
                        && ins.len() == 1
                        && ins[0].kind == Some(PartitionKind::Forward)
                        && par[ins[0].from] == par[i]
                }
                _ => false,
            };
        }
        let mut node_vertex = vec![usize::MAX; n];
        let mut vertices = Vec::new();
        for head in 0..n {
            if chained[head] {
                continue;
            }
            let vid = vertices.len();
            let mut members = vec![head];
            let mut i = 0;
            while i < members.len() {
                let cur = members[i];
                node_vertex[cur] = vid;
                for e in edges.iter().filter(|e| e.from == cur) {
                    if chained[e.to] && !members.contains(&e.to) {
                        members.push(e.to);
                    }
                }
                i += 1;
            }
            let input_edges: Vec<usize> = (0..edges.len()).filter(|&k| edges[k].to == head).collect();
            let num_inputs = input_edges.iter().map(|&k| edges[k].input + 1).max().unwrap_or(0);
            let name = members.iter().map(|&m| nodes[m].name.as_str()).collect::<Vec<_>>().join(" -> ");
            vertices.push(JobVertex {
                id: vid,
                name,
                parallelism: par[head],
                is_source: matches!(nodes[head].kind, NodeKind::Source(_)),
                nodes: members,
                head,
                input_edges,
                num_inputs,
            });
        }
        if node_vertex.contains(&usize::MAX) {
            return Err(GraphError::Invalid(
                "an operator is chained to a predecessor that is not part of the job".into(),
            ));
        }
        Ok(Self {
            name,
            max_parallelism,
            config,
            nodes,
            edges,
            vertices,
            node_vertex,
            watermark_interval_ms,
            on_terminate: Mutex::new(on_terminate),
            origin: None,
        })
    }

    /// The vertices, in topological-ish order of creation.
    pub fn vertices(&self) -> &[JobVertex] {
        &self.vertices
    }

    /// The slots the job needs with slot sharing: its highest vertex parallelism.
    pub fn required_slots(&self) -> u32 {
        self.vertices.iter().map(|v| v.parallelism).max().unwrap_or(0)
    }

    /// The name of operator `node` (for errors raised while it ran).
    pub fn operator_name(&self, node: usize) -> Option<&str> {
        self.nodes.get(node).map(|n| n.name.as_str())
    }

    /// The source of a source vertex, for its SourceCoordinator.
    pub fn source_of(&self, vertex: usize) -> Option<Arc<dyn ErasedSource>> {
        let v = self.vertices.get(vertex)?;
        match &self.nodes[v.head].kind {
            NodeKind::Source(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// The vertices that consume `vertex`'s output.
    pub fn downstream_of(&self, vertex: usize) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .edges
            .iter()
            .filter(|e| self.node_vertex[e.from] == vertex && self.node_vertex[e.to] != vertex)
            .map(|e| self.node_vertex[e.to])
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The inputs of `vertex`: upstream vertex and Flink's name of the ship strategy
    /// (`FORWARD`, `REBALANCE`, `RESCALE`, `HASH`, `BROADCAST`), one per input edge, for the
    /// job plan the REST API and the web UI draw.
    pub fn vertex_inputs(&self, vertex: usize) -> Vec<(usize, &'static str)> {
        let Some(v) = self.vertices.get(vertex) else { return vec![] };
        v.input_edges
            .iter()
            .filter_map(|&i| self.edges.get(i))
            .map(|e| {
                let strategy = match e.kind {
                    Some(crate::partition::PartitionKind::Forward) | None => "FORWARD",
                    Some(crate::partition::PartitionKind::Rebalance) => "REBALANCE",
                    Some(crate::partition::PartitionKind::Rescale) => "RESCALE",
                    Some(crate::partition::PartitionKind::Hash) => "HASH",
                    Some(crate::partition::PartitionKind::Broadcast) => "BROADCAST",
                };
                (self.node_vertex[e.from], strategy)
            })
            .collect()
    }

    /// The input channels of subtask `subtask` of `vertex`.
    pub fn input_channels(&self, vertex: usize, subtask: u32) -> Vec<InputChannel> {
        let Some(v) = self.vertices.get(vertex) else { return vec![] };
        let mut out = Vec::new();
        for &k in &v.input_edges {
            let e = &self.edges[k];
            let kind = e.kind.unwrap_or(PartitionKind::Forward);
            let p = self.nodes[e.from].parallelism.unwrap_or(1);
            for producer in producers_of(kind, subtask, p, v.parallelism) {
                out.push(InputChannel {
                    key: ChannelKey { edge: k as u32, producer, consumer: subtask },
                    input: e.input,
                });
            }
        }
        out
    }

    /// The subtasks (vertex, subtask) whose output subtask `subtask` of `vertex` reads: a
    /// checkpoint is triggered directly at a subtask once all of them ended (FLIP-147).
    pub fn upstream_subtasks(&self, vertex: usize, subtask: u32) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = self
            .input_channels(vertex, subtask)
            .iter()
            .filter_map(|c| {
                let e = self.edges.get(c.key.edge as usize)?;
                Some((*self.node_vertex.get(e.from)? as u32, c.key.producer))
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The output channels of subtask `subtask` of `vertex`, as [`Self::instantiate`] would
    /// open them (in no particular order): a subtask restored as finished ends them without
    /// building its operators.
    pub fn output_channels(&self, vertex: usize, subtask: u32) -> Vec<ChannelKey> {
        let Some(v) = self.vertices.get(vertex) else { return vec![] };
        let p = v.parallelism;
        let mut out = Vec::new();
        for (k, e) in self.edges.iter().enumerate() {
            let inside = |n: NodeId| self.node_vertex.get(n) == Some(&vertex);
            if !inside(e.from) || e.side_tag.is_some() || (inside(e.to) && e.to != v.head) {
                continue;
            }
            let kind = e.kind.unwrap_or(PartitionKind::Forward);
            let q = self.nodes[e.to].parallelism.unwrap_or(1);
            out.extend(consumers_of(kind, subtask, p, q).into_iter().map(|c| ChannelKey {
                edge: k as u32,
                producer: subtask,
                consumer: c,
            }));
        }
        out
    }

    /// Builds subtask `subtask` of `vertex`: its operator chain with writers at the ends.
    pub fn instantiate(&self, vertex: usize, subtask: u32, env: &TaskEnv) -> Result<VertexInstance, TaskError> {
        let v = self.vertices.get(vertex).ok_or_else(|| TaskError::msg("job graph", format!("no vertex {vertex}")))?;
        let mut channels = Vec::new();
        let built = self.build_node(v.head, vertex, subtask, env, &mut channels)?;
        let head = match built {
            Built::Source(s) => HeadKind::Source(s),
            Built::Head(h) => HeadKind::Operators(h),
            Built::Link(l) => HeadKind::Operators(self.nodes[v.head].ops.make_head(l, &v.name)?),
        };
        Ok(VertexInstance { head, output_channels: channels })
    }

    fn build_node(
        &self,
        n: NodeId,
        vertex: usize,
        subtask: u32,
        env: &TaskEnv,
        channels: &mut Vec<ChannelKey>,
    ) -> Result<Built, TaskError> {
        let node = &self.nodes[n];
        let p = node.parallelism.unwrap_or(1);
        let mut mains: Vec<Erased> = Vec::new();
        let mut sides: Vec<(String, Box<dyn SideOut>)> = Vec::new();
        for (k, e) in self.edges.iter().enumerate().filter(|(_, e)| e.from == n) {
            let target_in_vertex = self.node_vertex[e.to] == vertex && e.to != self.vertices[vertex].head;
            if let Some(tag) = &e.side_tag {
                if let Built::Link(l) = self.build_node(e.to, vertex, subtask, env, channels)? {
                    sides.push((tag.clone(), self.nodes[e.to].ops.make_side(l)?));
                }
            } else if target_in_vertex {
                if let Built::Link(l) = self.build_node(e.to, vertex, subtask, env, channels)? {
                    mains.push(l);
                }
            } else {
                let kind = e.kind.unwrap_or(PartitionKind::Forward);
                let q = self.nodes[e.to].parallelism.unwrap_or(1);
                let targets = consumers_of(kind, subtask, p, q);
                let base = channels.len();
                channels.extend(targets.iter().map(|&c| ChannelKey { edge: k as u32, producer: subtask, consumer: c }));
                mains.push(node.ops.writer(WriterSpec {
                    kind,
                    hash: e.hash.clone(),
                    targets,
                    channel_base: base,
                    subtask,
                    consumer_parallelism: q,
                    max_parallelism: self.max_parallelism,
                    batch_size: env.batch_size,
                    outbox: env.outbox.clone(),
                    flush: env.flush.clone(),
                }));
            }
        }
        let out = node.ops.fanout(mains);
        let ctx = LinkContext {
            subtask,
            parallelism: p,
            max_parallelism: self.max_parallelism,
            id: OpId { name: node.name.clone(), index: n, marker: env.marker.clone() },
            counters: env.counters.clone(),
            side_outputs: sides,
            watermark_interval_ms: self.watermark_interval_ms,
            state_backend: env.state_backend.clone(),
            final_checkpoint: env.final_checkpoint.clone(),
        };
        node.ops.build(ctx, out)
    }

    /// Called once by the runtime when the job reached a terminal state: releases what the
    /// graph holds for the caller (collect iterators end once every subtask is gone).
    pub fn job_terminated(&self) {
        let fs = match self.on_terminate.lock() {
            Ok(mut g) => std::mem::take(&mut *g),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        for f in fs {
            f();
        }
    }
}
