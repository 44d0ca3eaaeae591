//! What one subtask may reach outside itself.

use std::sync::Arc;

use riffle_api::metrics::JobCounters;
use riffle_api::Configuration;

use super::DataServices;
use crate::job_view::SubtaskIo;
use crate::peers::JobMasterGateway;

/// One subtask's services, resolved by the TaskExecutor when it deploys the subtask: the
/// JobMaster of the attempt that deployed it (acknowledgements, declines and questions go
/// there and nowhere else), its job's counters and its own I/O counters, the data channels,
/// and the cluster configuration (the job's own options are in its graph).
#[derive(Clone)]
pub struct TaskServices {
    /// The cluster configuration.
    pub config: Configuration,
    /// The JobMaster that deployed this subtask.
    pub job_master: JobMasterGateway,
    /// The job's counters.
    pub counters: Arc<JobCounters>,
    /// This subtask's own I/O counters, as the REST API shows them.
    pub io: Arc<SubtaskIo>,
    /// Data channels: in-process, and the network data plane of a TaskManager process.
    pub data: Arc<DataServices>,
}
