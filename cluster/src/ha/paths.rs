//! Where each piece of HA state lives in ZooKeeper, in one place so that every JobManager
//! (and a human with `zkCli.sh`) finds the same nodes:
//!
//! ```text
//! <root>/<cluster-id>/leader-latch/latch-<nonce>-<seq>   ephemeral; data: the contender's address
//! <root>/<cluster-id>/checkpoint-counter/<job-id>       next checkpoint id (8 bytes, big endian)
//! <root>/<cluster-id>/jobgraphs/<job-id>                pointer to the job graph's file
//! <root>/<cluster-id>/checkpoints/<job-id>/<id:019>     pointer to a completed checkpoint's file
//! <root>/<cluster-id>/exception-history/<job-id>        pointer to the job's exception history file
//! ```
//!
//! Checkpoint ids are zero-padded to 19 digits so that ZooKeeper's (string) order is their
//! numeric order.

use riffle_actors::JobId;

use super::config::ZooKeeperHaConfig;

/// This cluster's ZooKeeper paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaPaths {
    base: String,
}

impl HaPaths {
    /// The paths below `<root>/<cluster-id>`.
    pub fn new(config: &ZooKeeperHaConfig) -> Self {
        Self { base: config.cluster_path() }
    }

    /// `<root>/<cluster-id>`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Where the contenders for leadership put their ephemeral sequential nodes.
    pub fn leader_latch(&self) -> String {
        format!("{}/leader-latch", self.base)
    }

    /// The parent of every job's checkpoint id counter.
    pub fn checkpoint_counters(&self) -> String {
        format!("{}/checkpoint-counter", self.base)
    }

    /// A job's checkpoint id counter.
    pub fn checkpoint_counter(&self, job: JobId) -> String {
        format!("{}/checkpoint-counter/{job}", self.base)
    }

    /// The parent of the job graph pointers.
    pub fn job_graphs(&self) -> String {
        format!("{}/jobgraphs", self.base)
    }

    /// A job's job graph pointer.
    pub fn job_graph(&self, job: JobId) -> String {
        format!("{}/jobgraphs/{job}", self.base)
    }

    /// The parent of a job's completed-checkpoint pointers.
    pub fn checkpoints(&self, job: JobId) -> String {
        format!("{}/checkpoints/{job}", self.base)
    }

    /// The parent of the exception history pointers.
    pub fn exception_histories(&self) -> String {
        format!("{}/exception-history", self.base)
    }

    /// A job's exception history pointer.
    pub fn exception_history(&self, job: JobId) -> String {
        format!("{}/exception-history/{job}", self.base)
    }

    /// One completed checkpoint's pointer.
    pub fn checkpoint(&self, job: JobId, checkpoint_id: u64) -> String {
        format!("{}/checkpoints/{job}/{}", self.base, checkpoint_node_name(checkpoint_id))
    }
}

/// A checkpoint id as a node name: 19 digits, so string order is numeric order.
pub fn checkpoint_node_name(checkpoint_id: u64) -> String {
    format!("{checkpoint_id:019}")
}

/// The checkpoint id of a node name written by [`checkpoint_node_name`].
pub fn parse_checkpoint_node_name(name: &str) -> Option<u64> {
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())).then(|| name.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_names_sort_numerically() {
        let mut names: Vec<String> = [10u64, 9, 100, 1].iter().map(|&i| checkpoint_node_name(i)).collect();
        names.sort();
        let ids: Vec<u64> = names.iter().filter_map(|n| parse_checkpoint_node_name(n)).collect();
        assert_eq!(ids, vec![1, 9, 10, 100]);
        assert_eq!(parse_checkpoint_node_name("12a"), None);
        assert_eq!(parse_checkpoint_node_name(""), None);
    }
}
