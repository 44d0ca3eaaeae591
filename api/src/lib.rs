//! riffle's DataStream API: how jobs are described.
//!
//! Users build a job with a [`StreamEnvironment`]: sources become [`DataStream`]s, operators
//! (map, key_by, windows, process functions, connect, multi-input) add nodes, sinks end them.
//! [`StreamEnvironment::build_job_graph`] turns that into a [`JobGraph`], whose vertices are
//! chains of operators fused by plain function calls. The runtime (riffle-actors) schedules
//! and runs the vertices; this crate holds no actors and does no scheduling.
//!
//! Architecture invariant: no actor, channel or thread here. The only I/O is that of the
//! built-in file source and file sink, which run inside subtasks.

pub mod config;
pub mod config_keys;
pub mod environment;
pub mod error;
pub mod final_checkpoint;
pub mod functions;
pub mod generators;
pub mod graph;
pub mod head;
pub mod link;
pub mod metrics;
pub mod operators;
pub mod origin;
pub mod panic_guard;
pub mod partition;
pub mod plugin;
pub mod programs;
pub mod record;
pub mod sink;
pub mod snapshot;
pub mod source;
pub mod stream;
pub mod time;
pub mod watermark;
pub mod window;

pub use config::{ConfigError, ConfigOption, ConfigValue, Configuration, Group, MemorySize, OptionInfo};
pub use environment::StreamEnvironment;
pub use error::{ApiError, ErrorDomain, GraphError, TaskError, TaskResult, UserError};
pub use functions::{
    CoProcessFunction, KeyedProcessFunction, MultiInputFunction, OutputTag, ProcessContext, RichMapFunction,
    RuntimeContext,
};
pub use graph::{ChannelKey, HeadKind, InputChannel, JobGraph, JobVertex, TaskEnv, VertexInstance};
pub use link::{Collector, Input};
pub use origin::{JobOrigin, ProgramSource};
pub use programs::{ProgramArg, ProgramError, ProgramInfo, ProgramSet, Programs};
pub use record::{CheckpointBarrier, Data, Element, Key, StreamRecord, MAX_WATERMARK, NO_TIMESTAMP};
pub use riffle_state::{KeyedStateStore, ListState, MapState, TimeDomain, ValueState};
pub use sink::{ExactlyOnceTextFileSink, SinkContext, TwoPhaseCommitOperator, TwoPhaseCommitSink};
pub use stream::{
    keyed_multi_input, multi_input, CollectStream, ConnectedStreams, DataStream, KeyedStream, SinkHandle,
    WindowedStream,
};
pub use watermark::{WatermarkGenerator, WatermarkOutput, WatermarkStrategy};
pub use window::{
    AggregateFunction, ProcessWindowContext, ProcessWindowFunction, RichProcessWindowFunction, TimeWindow,
    WindowAssigner, WindowContext, WindowKey,
};

/// The configuration options this crate reads, for the registry (see [`config_keys`]).
pub fn options() -> Vec<&'static dyn OptionInfo> {
    environment::OPTIONS.to_vec()
}
