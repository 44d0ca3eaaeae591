//! Supervision: how a parent actor learns that a child stopped and what it does about it.
//!
//! actix's own `Supervisor` restarts an actor that stopped and catches no panic. riffle's
//! parents instead hold their children, receive a [`ChildExited`] with the reason, and ask
//! a [`SupervisorState`] — a pure decision function over the child's history — whether to
//! restart it (with backoff), stop it, or escalate by failing themselves. Panics in user code
//! and in handlers that matter are caught at a [`catch_panic`] boundary and become reasons.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use actix::Message;
use serde::{Deserialize, Serialize};

/// Why a supervised actor (the Dispatcher, the ResourceManager, a JobMaster, a Slot) stopped.
/// A subtask's end is no exit reason: it is a [`TaskOutcome`](crate::gateway::TaskOutcome),
/// which its Slot passes on to the TaskExecutor and that to the JobMaster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitReason {
    /// It finished its work.
    Normal,
    /// It was asked to stop.
    Cancelled,
    /// It failed with an error (its cause chain kept).
    Failed(crate::error::RuntimeError),
    /// Code it ran panicked; the payload's message.
    Panicked(String),
}

impl ExitReason {
    /// Whether the child ended abnormally.
    pub fn is_failure(&self) -> bool {
        matches!(self, ExitReason::Failed(_) | ExitReason::Panicked(_))
    }
}

impl std::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("finished"),
            ExitReason::Cancelled => f.write_str("cancelled"),
            ExitReason::Failed(e) => write!(f, "failed: {e}"),
            ExitReason::Panicked(e) => write!(f, "panicked: {e}"),
        }
    }
}

/// Which child of a supervising actor: typed, so a parent matches on it instead of parsing a
/// name back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChildId {
    /// The JobManager's Dispatcher.
    Dispatcher,
    /// The JobManager's ResourceManager.
    ResourceManager,
    /// A Dispatcher's JobMaster of this job.
    JobMaster(crate::ids::JobId),
    /// A TaskExecutor's slot of this index.
    Slot(u32),
}

impl std::fmt::Display for ChildId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildId::Dispatcher => f.write_str("dispatcher"),
            ChildId::ResourceManager => f.write_str("resource-manager"),
            ChildId::JobMaster(job) => write!(f, "{job}"),
            ChildId::Slot(i) => write!(f, "slot-{i}"),
        }
    }
}

/// Sent by a child to its parent when it stops, whatever the reason.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct ChildExited {
    /// The child among its siblings.
    pub child: ChildId,
    /// Why it stopped.
    pub reason: ExitReason,
}

/// What a parent does when a child fails.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// Restart the child, at most `max_restarts` times within `within`; the delay doubles from
    /// `backoff` up to `max_backoff`. Past the limit, escalate.
    Restart {
        /// Restarts allowed in the window.
        max_restarts: u32,
        /// The window.
        within: Duration,
        /// First delay.
        backoff: Duration,
        /// Longest delay.
        max_backoff: Duration,
    },
    /// Let the child stay stopped.
    Stop,
    /// Fail the parent with the child's reason.
    Escalate,
}

/// The parent's decision about one exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do (normal exit or cancellation).
    Ignore,
    /// Start the child again after this delay.
    Restart(Duration),
    /// Leave it stopped.
    Stop,
    /// Fail the parent with this reason.
    Escalate(String),
}

/// Per-child supervision state: the strategy and the recent restarts.
#[derive(Debug, Clone)]
pub struct SupervisorState {
    strategy: Strategy,
    restarts: VecDeque<Instant>,
}

impl SupervisorState {
    /// State for a child supervised with `strategy`.
    pub fn new(strategy: Strategy) -> Self {
        Self { strategy, restarts: VecDeque::new() }
    }

    /// Decides what to do about an exit at `now`. Pure but for the restart history.
    pub fn decide(&mut self, child: &ChildId, reason: &ExitReason, now: Instant) -> Decision {
        if !reason.is_failure() {
            return Decision::Ignore;
        }
        match &self.strategy {
            Strategy::Stop => Decision::Stop,
            Strategy::Escalate => Decision::Escalate(format!("child '{child}' {reason}")),
            Strategy::Restart { max_restarts, within, backoff, max_backoff } => {
                while self.restarts.front().is_some_and(|t| now.duration_since(*t) > *within) {
                    self.restarts.pop_front();
                }
                if self.restarts.len() as u32 >= *max_restarts {
                    return Decision::Escalate(format!(
                        "child '{child}' {reason} (restarted {} times within {:?}, giving up)",
                        self.restarts.len(),
                        within
                    ));
                }
                let n = self.restarts.len() as u32;
                let delay = backoff.saturating_mul(1u32 << n.min(16)).min(*max_backoff);
                self.restarts.push_back(now);
                Decision::Restart(delay)
            }
        }
    }
}

/// Runs `f`, turning a panic into [`RuntimeError::Panicked`](crate::error::RuntimeError) with
/// its message: the boundary around user code and the handlers whose failure must reach a
/// parent instead of killing the thread.
pub fn catch_panic<R>(f: impl FnOnce() -> R) -> crate::error::Result<R> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| crate::error::RuntimeError::Panicked(panic_message(p.as_ref())))
}

/// The message of a panic payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_with_backoff_then_escalate() {
        let mut s = SupervisorState::new(Strategy::Restart {
            max_restarts: 2,
            within: Duration::from_secs(60),
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(15),
        });
        let t = Instant::now();
        let r = ExitReason::Panicked("boom".into());
        assert_eq!(s.decide(&ChildId::Slot(0), &r, t), Decision::Restart(Duration::from_millis(10)));
        assert_eq!(s.decide(&ChildId::Slot(0), &r, t), Decision::Restart(Duration::from_millis(15)));
        assert!(matches!(s.decide(&ChildId::Slot(0), &r, t), Decision::Escalate(m) if m.contains("boom")));
        // Outside the window the history is forgotten.
        assert!(matches!(s.decide(&ChildId::Slot(0), &r, t + Duration::from_secs(61)), Decision::Restart(_)));
        assert_eq!(s.decide(&ChildId::Slot(0), &ExitReason::Normal, t), Decision::Ignore);
    }

    #[test]
    fn catch_panic_returns_message() {
        assert_eq!(catch_panic(|| 3), Ok(3));
        let e = catch_panic(|| -> u32 { panic!("bad {}", 7) });
        assert_eq!(e, Err(crate::error::RuntimeError::Panicked("bad 7".to_string())));
        assert_eq!(catch_panic(|| -> u32 { panic!("x") }).map_err(|e| e.to_string()), Err("x".to_string()));
    }
}
