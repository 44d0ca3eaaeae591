//! The JobManager: the parent of the Dispatcher and the ResourceManager. It starts them,
//! hands out their addresses, and supervises them: a ResourceManager that stops is
//! restarted (TaskExecutors re-register); a Dispatcher that stops escalates (the jobs' state
//! lives there, so the JobManager stops and the failure is visible).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::dispatcher::Dispatcher;
use crate::job_master::JobMasterSettings;
use crate::mailbox::Probed;
use crate::resource_manager::ResourceManager;
use crate::services::RuntimeShared;
use crate::supervision::{ChildExited, ChildId, Decision, ExitReason, Strategy, SupervisorState};

/// The addresses of the JobManager's children.
#[derive(Clone)]
pub struct JobManagerAddrs {
    /// The Dispatcher.
    pub dispatcher: Probed<Dispatcher>,
    /// The ResourceManager.
    pub resource_manager: Probed<ResourceManager>,
}

/// Asks for the children's addresses.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Option<JobManagerAddrs>")]
pub struct GetAddrs;

/// Stops the JobManager and its children (an embedded cluster shutting down inside a
/// caller's actor system).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct StopJobManager;

/// The JobManager actor.
pub struct JobManager {
    shared: Arc<RuntimeShared>,
    settings: JobMasterSettings,
    max_slots: Option<u32>,
    addrs: Option<JobManagerAddrs>,
    rm_supervisor: SupervisorState,
    dispatcher_supervisor: SupervisorState,
}

impl JobManager {
    /// A JobManager whose children use these settings.
    pub fn new(shared: Arc<RuntimeShared>, settings: JobMasterSettings, max_slots: Option<u32>) -> Self {
        Self {
            shared,
            settings,
            max_slots,
            addrs: None,
            rm_supervisor: SupervisorState::new(Strategy::Restart {
                max_restarts: 3,
                within: Duration::from_secs(60),
                backoff: Duration::from_millis(50),
                max_backoff: Duration::from_secs(2),
            }),
            dispatcher_supervisor: SupervisorState::new(Strategy::Escalate),
        }
    }

    fn start_rm(&self, ctx: &mut Context<Self>) -> Probed<ResourceManager> {
        let rm = Probed::new(
            ResourceManager::new(self.shared.directory.clone(), self.max_slots, ctx.address().recipient()).start(),
        );
        self.shared.directory.set_resource_manager(rm.clone());
        rm
    }
}

impl Actor for JobManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let resource_manager = self.start_rm(ctx);
        let dispatcher =
            Probed::new(Dispatcher::new(&self.shared, self.settings.clone(), ctx.address().recipient()).start());
        self.addrs = Some(JobManagerAddrs { dispatcher, resource_manager });
    }
}

impl Handler<StopJobManager> for JobManager {
    type Result = ();
    fn handle(&mut self, _: StopJobManager, ctx: &mut Self::Context) {
        // Children stopping now is expected: no restarts.
        self.rm_supervisor = SupervisorState::new(Strategy::Stop);
        self.dispatcher_supervisor = SupervisorState::new(Strategy::Stop);
        if let Some(a) = self.addrs.take() {
            a.dispatcher.do_send(crate::dispatcher::StopDispatcher);
            a.resource_manager.do_send(crate::resource_manager::StopResourceManager);
        }
        ctx.stop();
    }
}

impl Handler<GetAddrs> for JobManager {
    type Result = Option<JobManagerAddrs>;
    fn handle(&mut self, _: GetAddrs, _: &mut Self::Context) -> Self::Result {
        self.addrs.clone()
    }
}

impl Handler<ChildExited> for JobManager {
    type Result = ();
    fn handle(&mut self, msg: ChildExited, ctx: &mut Self::Context) {
        let now = Instant::now();
        let reason = if msg.reason == ExitReason::Normal {
            // Neither child stops on its own while the JobManager runs.
            ExitReason::Failed(crate::error::RuntimeError::Unavailable("stopped unexpectedly".into()))
        } else {
            msg.reason.clone()
        };
        let decision = match msg.child {
            ChildId::ResourceManager => self.rm_supervisor.decide(&msg.child, &reason, now),
            _ => self.dispatcher_supervisor.decide(&msg.child, &reason, now),
        };
        match decision {
            Decision::Restart(delay) if msg.child == ChildId::ResourceManager => {
                tracing::warn!(?delay, "restarting the resource manager: {reason}");
                ctx.run_later(delay, |act, ctx| {
                    let rm = act.start_rm(ctx);
                    act.shared.directory.resource_manager_restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let Some(a) = act.addrs.as_mut() {
                        a.resource_manager = rm;
                    }
                    for te in act.shared.directory.task_executors.iter() {
                        match te.value() {
                            crate::peers::TaskExecutorGateway::Local(a) => a.do_send(crate::task_executor::Reregister),
                            // A remote TaskExecutor's registration is its link's: the link
                            // registers again on its behalf.
                            crate::peers::TaskExecutorGateway::Remote(r) => {
                                if let Some(rm) = act.shared.directory.resource_manager() {
                                    rm.do_send(crate::gateway::RegisterTaskExecutor {
                                        resource_id: te.key().clone(),
                                        slots: r.slots(),
                                    });
                                }
                            }
                        }
                    }
                });
            }
            Decision::Ignore | Decision::Stop | Decision::Restart(_) => {}
            Decision::Escalate(why) => {
                tracing::error!("job manager stopping: {why}");
                ctx.stop();
            }
        }
    }
}
