//! The network data plane between TaskManager processes.
//!
//! A channel whose producer and consumer run in different processes travels over a TCP
//! connection of its own (handshaken like every riffle connection, see `transport`). The
//! producer's subtask writes into the channel's local end as it always does; on its side the
//! [`outbound`] task takes the other end and sends each element, but only while it holds
//! credit ([`credit`]). The consumer's [`inbound`] task grants the channel's capacity as
//! credit up front and one credit more for every element the consumer's local channel
//! accepted, so at most `capacity` elements are ever on the wire per channel, besides the
//! local channel's own `capacity`: memory stays bounded, and a slow consumer stops producers
//! in other processes exactly as it stops local ones.
//! Checkpoint barriers of unaligned checkpoints go on the priority lane without credit, so
//! they overtake the data across the network too.
//!
//! A broken connection drops the channel's local end on both sides: the subtasks see their
//! peer gone and wait for the JobMaster to cancel them (the lost TaskManager is the root
//! cause the JobMaster records).

pub mod buffer_pool;
pub mod credit;
pub mod inbound;
pub mod outbound;
pub mod protocol;

use std::sync::Arc;
use std::time::Duration;

use riffle_actors::exchange::ChannelId;
use riffle_actors::peers::DataPlane;
use riffle_actors::RuntimeShared;
use riffle_api::JobGraph;

use crate::transport::Timeouts;

/// How the data plane of one TaskManager behaves.
#[derive(Debug, Clone)]
pub struct DataPlaneSettings {
    /// Elements a channel holds (`taskmanager.network.buffers-per-channel`): the credit a
    /// consumer grants.
    pub capacity: usize,
    /// This TaskManager's node name, for handshakes.
    pub node: String,
    /// Connection set-up timeouts.
    pub timeouts: Timeouts,
    /// How long to keep trying to reach a consumer's TaskManager, and how long a consumer's
    /// side waits for the job's graph.
    pub patience: Duration,
    /// `rpc.max-frame-size`.
    pub max_frame_size: u32,
    /// The TaskManager's network buffers: every data frame is read into or encoded into them.
    pub buffers: buffer_pool::NetworkBuffers,
}

/// The data plane of a TaskManager process: ships outbound channels from the subtask's own
/// thread (encoding happens there, as in Flink's task threads).
pub struct NetworkDataPlane {
    shared: Arc<RuntimeShared>,
    settings: DataPlaneSettings,
}

impl NetworkDataPlane {
    /// A data plane over `shared`'s channels.
    pub fn new(shared: Arc<RuntimeShared>, settings: DataPlaneSettings) -> Self {
        Self { shared, settings }
    }
}

impl DataPlane for NetworkDataPlane {
    fn open_outbound(&self, id: ChannelId, address: &str, graph: Arc<JobGraph>) {
        let Some(ends) = self.shared.data.exchange.take_receiver(id, self.settings.capacity) else {
            tracing::warn!(channel = ?id.key, "an outbound channel was taken already");
            return;
        };
        let address = address.to_string();
        let settings = self.settings.clone();
        // Called from the producer subtask, on its slot's runtime.
        actix::spawn(outbound::run(id, address, graph, ends, settings, self.shared.clone()));
    }
}
