//! The job lifecycle as a pure state machine (Flink's JobStatus): every change of a job's
//! status goes through [`transition`], so an impossible change is an error, not a silent bug.

use serde::{Deserialize, Serialize};

/// A job's status, with Flink's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    /// Accepted, not yet scheduled.
    Created,
    /// Slots requested or subtasks running.
    Running,
    /// A subtask failed; the others are being cancelled.
    Failing,
    /// A subtask failed and the restart strategy allows a restart: the others are being
    /// cancelled, then the job is scheduled again.
    Restarting,
    /// Ended by a failure.
    Failed,
    /// Cancel requested; subtasks are being stopped.
    Cancelling,
    /// Ended by cancel.
    Canceled,
    /// Every subtask finished.
    Finished,
    /// This JobManager lost its leadership (high availability): the subtasks are cancelled
    /// and the JobMaster ends, but the job is not over — its stored graph, checkpoints,
    /// checkpoint counter and exception history stay for the next leader, which recovers it.
    /// Terminal for this JobMaster ([`JobStatus::is_terminal`]), never globally
    /// ([`JobStatus::is_globally_terminal`]), as Flink's SUSPENDED.
    Suspended,
}

impl JobStatus {
    /// Whether the job ended for this JobMaster (SUSPENDED included: nothing more happens to
    /// the job here).
    pub fn is_terminal(self) -> bool {
        self.is_globally_terminal() || self == JobStatus::Suspended
    }

    /// Whether the job ended for good: its highly available data (stored graph, checkpoints,
    /// counter, history) may be cleaned up. SUSPENDED is not: another leader resumes the job.
    pub fn is_globally_terminal(self) -> bool {
        matches!(self, JobStatus::Failed | JobStatus::Canceled | JobStatus::Finished)
    }

    /// Flink's upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Created => "CREATED",
            JobStatus::Running => "RUNNING",
            JobStatus::Failing => "FAILING",
            JobStatus::Restarting => "RESTARTING",
            JobStatus::Failed => "FAILED",
            JobStatus::Cancelling => "CANCELLING",
            JobStatus::Canceled => "CANCELED",
            JobStatus::Finished => "FINISHED",
            JobStatus::Suspended => "SUSPENDED",
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEvent {
    /// Scheduling starts.
    Schedule,
    /// A subtask (or scheduling) failed.
    Fail,
    /// A subtask failed and the job will be restarted.
    Restart,
    /// The user cancels.
    Cancel,
    /// Every subtask finished.
    AllFinished,
    /// Every subtask stopped after a failure or cancel.
    AllStopped,
    /// This JobManager lost its leadership: the job is suspended, whatever it was doing.
    Suspend,
}

/// An event that does not apply in a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("job event {event:?} is not allowed in status {from}")]
pub struct InvalidTransition {
    /// The status.
    pub from: JobStatus,
    /// The event.
    pub event: JobEvent,
}

/// The status after `event` in `from`.
pub fn transition(from: JobStatus, event: JobEvent) -> Result<JobStatus, InvalidTransition> {
    use JobEvent::*;
    use JobStatus::*;
    Ok(match (from, event) {
        (Created | Restarting, Schedule) => Running,
        (Running, Restart) => Restarting,
        (Restarting, Restart) => Restarting,
        (Restarting, Fail) => Failing,
        (Restarting, Cancel) => Cancelling,
        (Created | Running, Fail) => Failing,
        (Failing, Fail) => Failing,
        (Cancelling, Fail) => Cancelling,
        (Created | Running, Cancel) => Cancelling,
        (Failing | Cancelling, Cancel) => from,
        (Running, AllFinished) => Finished,
        (Failing, AllStopped | AllFinished) => Failed,
        (Cancelling, AllStopped | AllFinished) => Canceled,
        // From any status that is not an end: the job moves to the next leader.
        (Created | Running | Restarting | Failing | Cancelling, Suspend) => Suspended,
        // Subtasks that stop (or finish) after the suspension change nothing.
        (Suspended, AllStopped | AllFinished | Suspend) => Suspended,
        _ => return Err(InvalidTransition { from, event }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle() {
        let s = transition(JobStatus::Created, JobEvent::Schedule).unwrap();
        assert_eq!(transition(s, JobEvent::AllFinished), Ok(JobStatus::Finished));
        let f = transition(s, JobEvent::Fail).unwrap();
        assert_eq!(f, JobStatus::Failing);
        assert_eq!(transition(f, JobEvent::Cancel), Ok(JobStatus::Failing));
        assert_eq!(transition(f, JobEvent::AllStopped), Ok(JobStatus::Failed));
        let c = transition(s, JobEvent::Cancel).unwrap();
        assert_eq!(transition(c, JobEvent::AllStopped), Ok(JobStatus::Canceled));
        assert!(transition(JobStatus::Finished, JobEvent::Cancel).is_err());
        assert!(JobStatus::Canceled.is_terminal() && !JobStatus::Failing.is_terminal());
        let r = transition(s, JobEvent::Restart).unwrap();
        assert_eq!(r, JobStatus::Restarting);
        assert_eq!(transition(r, JobEvent::Schedule), Ok(JobStatus::Running));
        assert_eq!(transition(r, JobEvent::Cancel), Ok(JobStatus::Cancelling));
        assert!(transition(JobStatus::Finished, JobEvent::Restart).is_err());
    }

    #[test]
    fn every_status_but_an_end_can_be_suspended_and_suspended_is_only_locally_terminal() {
        use JobStatus::*;
        for from in [Created, Running, Restarting, Failing, Cancelling] {
            assert_eq!(transition(from, JobEvent::Suspend), Ok(Suspended), "{from}");
        }
        for from in [Failed, Canceled, Finished] {
            assert!(transition(from, JobEvent::Suspend).is_err(), "{from}");
        }
        assert_eq!(transition(Suspended, JobEvent::AllStopped), Ok(Suspended));
        for event in [JobEvent::Schedule, JobEvent::Fail, JobEvent::Restart, JobEvent::Cancel] {
            assert!(transition(Suspended, event).is_err(), "{event:?}");
        }
        assert!(Suspended.is_terminal() && !Suspended.is_globally_terminal());
        assert_eq!(Suspended.as_str(), "SUSPENDED");
    }
}
