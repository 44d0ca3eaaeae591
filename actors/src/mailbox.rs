//! Mailbox probes for the control actors (Dispatcher, ResourceManager, JobMasters,
//! TaskExecutors), so that a thread dump can say how many messages wait for each and what it
//! is doing. actix keeps its queue lengths private; so the senders that matter address these
//! actors through a [`Probed`] address, which wraps each message in a [`Counted`] envelope
//! carrying a [`Ticket`]. The ticket counts the message while it waits and lets go of it
//! however the message ends: handled, cancelled by its sender, or dropped with a stopped
//! actor's queue. A count therefore never drifts, whatever happens to the message.
//!
//! Messages an actor sends itself (`ctx.notify`, timers) and those sent through a plain
//! `Addr`/`Recipient` are not counted: the probe measures the work others queue for it.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix::dev::{MessageResponse, OneshotSender, Request, ToEnvelope};
use actix::{Actor, Addr, Handler, Message};

/// What one actor's probe knows: messages queued for it, and what it handled last.
#[derive(Debug, Default)]
pub struct MailboxProbe {
    queued: AtomicUsize,
    /// When the current (or last) message's handler started, ms since the epoch.
    started_ms: AtomicI64,
    /// When the last handler returned, ms since the epoch (0: none yet).
    finished_ms: AtomicI64,
    last: Mutex<&'static str>,
}

/// What a thread dump shows of one control actor (travels in a TaskManager's heartbeats).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MailboxState {
    /// Messages sent to it and not yet handled.
    pub queued: usize,
    /// The message it is handling now (`busy`) or handled last; empty when none yet.
    pub message: String,
    /// Whether a handler is running now.
    pub busy: bool,
    /// Since when it is busy or idle, ms since the epoch (0: it has handled nothing yet).
    pub since_ms: i64,
}

impl MailboxProbe {
    /// The probe's current reading.
    pub fn state(&self) -> MailboxState {
        let started = self.started_ms.load(Ordering::Acquire);
        let finished = self.finished_ms.load(Ordering::Acquire);
        let busy = started > 0 && started > finished;
        MailboxState {
            queued: self.queued.load(Ordering::Relaxed),
            message: self.last.lock().unwrap_or_else(|e| e.into_inner()).to_string(),
            busy,
            since_ms: if busy { started } else { finished },
        }
    }

    fn handling(&self, message: &'static str) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = message;
        // Strictly after the previous finish, so `busy` holds even within one millisecond.
        let now = riffle_api::time::now_ms().max(self.finished_ms.load(Ordering::Acquire) + 1);
        self.started_ms.store(now, Ordering::Release);
    }

    fn handled(&self) {
        let now = riffle_api::time::now_ms().max(self.started_ms.load(Ordering::Acquire));
        self.finished_ms.store(now, Ordering::Release);
    }
}

/// Holds one queued message's place in its actor's count; gives it up when dropped.
#[derive(Debug)]
pub struct Ticket(Arc<MailboxProbe>);

impl Ticket {
    fn issue(probe: &Arc<MailboxProbe>) -> Self {
        probe.queued.fetch_add(1, Ordering::Relaxed);
        Ticket(probe.clone())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A message on its way through a [`Probed`] address. Control actors handle it with
/// [`counted_mailbox!`](crate::counted_mailbox) by handling the message inside.
#[derive(Debug)]
pub struct Counted<M> {
    /// The message.
    pub msg: M,
    /// Its place in the count.
    pub ticket: Ticket,
}

impl<M: Message> Message for Counted<M> {
    type Result = M::Result;
}

impl<M> Counted<M> {
    /// Takes the message out: it no longer waits. From here until [`Handling::done`] the
    /// actor is busy with it.
    pub fn open(self) -> (M, Handling) {
        let probe = self.ticket.0.clone();
        drop(self.ticket);
        probe.handling(short_type_name::<M>());
        (self.msg, Handling(probe))
    }
}

/// The actor is handling a message until this is dropped.
#[derive(Debug)]
pub struct Handling(Arc<MailboxProbe>);

impl Handling {
    /// The handler returned.
    pub fn done(self) {}
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.handled();
    }
}

/// An inner handler's response, answered as the response to the [`Counted`] envelope.
pub struct Forward<R>(pub R);

impl<A: Actor, M: Message, R: MessageResponse<A, M>> MessageResponse<A, Counted<M>> for Forward<R> {
    fn handle(self, ctx: &mut A::Context, tx: Option<OneshotSender<M::Result>>) {
        self.0.handle(ctx, tx)
    }
}

/// An actor's address whose messages are counted by the actor's probe. Clones share it.
pub struct Probed<A: Actor> {
    addr: Addr<A>,
    probe: Arc<MailboxProbe>,
}

impl<A: Actor> Clone for Probed<A> {
    fn clone(&self) -> Self {
        Self { addr: self.addr.clone(), probe: self.probe.clone() }
    }
}

impl<A: Actor> std::fmt::Debug for Probed<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probed").field("actor", &std::any::type_name::<A>()).field("probe", &self.probe).finish()
    }
}

impl<A: Actor> Probed<A> {
    /// Counts what is sent through this address (and its clones) from now on. Create one per
    /// actor and share it: two probes of one actor would each count half.
    pub fn new(addr: Addr<A>) -> Self {
        Self { addr, probe: Arc::default() }
    }

    /// Sends without waiting; dropped (and uncounted) when the actor is gone.
    pub fn do_send<M>(&self, msg: M)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Counted<M>>,
        A::Context: ToEnvelope<A, Counted<M>>,
    {
        self.addr.do_send(Counted { msg, ticket: Ticket::issue(&self.probe) });
    }

    /// Sends and lets the caller wait for the answer.
    pub fn send<M>(&self, msg: M) -> Request<A, Counted<M>>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Counted<M>>,
        A::Context: ToEnvelope<A, Counted<M>>,
    {
        self.addr.send(Counted { msg, ticket: Ticket::issue(&self.probe) })
    }

    /// Whether the actor still runs.
    pub fn connected(&self) -> bool {
        self.addr.connected()
    }

    /// The plain address (for recipients and supervision; messages through it are not
    /// counted).
    pub fn addr(&self) -> &Addr<A> {
        &self.addr
    }

    /// The actor's mailbox as the probe sees it.
    pub fn mailbox(&self) -> MailboxState {
        self.probe.state()
    }
}

/// `riffle_actors::gateway::DeployTask` → `DeployTask`.
fn short_type_name<M>() -> &'static str {
    let full = std::any::type_name::<M>();
    let head = full.split('<').next().unwrap_or(full);
    head.rsplit("::").next().unwrap_or(head)
}

/// Lets an actor be addressed through [`Probed`]: it handles every [`Counted`] message it
/// can handle plainly, by handling the message inside and recording that it did.
#[macro_export]
macro_rules! counted_mailbox {
    ($actor:ty) => {
        impl<M> ::actix::Handler<$crate::mailbox::Counted<M>> for $actor
        where
            M: ::actix::Message + 'static,
            $actor: ::actix::Handler<M>,
        {
            type Result = $crate::mailbox::Forward<<$actor as ::actix::Handler<M>>::Result>;
            fn handle(
                &mut self,
                counted: $crate::mailbox::Counted<M>,
                ctx: &mut <$actor as ::actix::Actor>::Context,
            ) -> Self::Result {
                let (msg, handling) = counted.open();
                let answer = <$actor as ::actix::Handler<M>>::handle(self, msg, ctx);
                handling.done();
                $crate::mailbox::Forward(answer)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::prelude::*;
    use std::time::Duration;

    struct Slow;
    impl Actor for Slow {
        type Context = Context<Self>;
    }

    #[derive(Message)]
    #[rtype(result = "u32")]
    struct Work(u64);

    impl Handler<Work> for Slow {
        type Result = u32;
        fn handle(&mut self, w: Work, _: &mut Context<Self>) -> u32 {
            std::thread::sleep(Duration::from_millis(w.0));
            7
        }
    }
    crate::counted_mailbox!(Slow);

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Halt;

    impl Handler<Halt> for Slow {
        type Result = ();
        fn handle(&mut self, _: Halt, ctx: &mut Context<Self>) {
            ctx.stop();
        }
    }

    #[actix::test]
    async fn counts_queued_messages_and_forgets_each_once_it_is_handled() {
        let slow = Probed::new(Slow.start());
        assert_eq!(slow.mailbox(), MailboxState { queued: 0, message: String::new(), busy: false, since_ms: 0 });
        for _ in 0..5 {
            slow.do_send(Work(20));
        }
        // Nothing was handled yet: this task has not yielded to the actor.
        assert_eq!(slow.mailbox().queued, 5);
        // One answer: the five before it are handled in order first.
        assert_eq!(slow.send(Work(0)).await.ok(), Some(7));
        let m = slow.mailbox();
        assert_eq!((m.queued, m.message.as_str(), m.busy), (0, "Work", false));
        assert!(m.since_ms > 0);
    }

    #[actix::test]
    async fn a_cancelled_request_and_a_stopped_actor_give_up_their_places() {
        let slow = Probed::new(Slow.start());
        slow.do_send(Work(10));
        // Cancelled before it is handled: its sender dropped the request.
        drop(slow.send(Work(0)));
        assert_eq!(slow.mailbox().queued, 2);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(slow.mailbox().queued, 0);

        // A message for an actor that has stopped is dropped at once, and so is its ticket.
        slow.addr().do_send(Halt);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!slow.connected());
        slow.do_send(Work(0));
        assert_eq!(slow.mailbox().queued, 0);
    }

    #[derive(Debug, Clone, Copy)]
    enum Op {
        /// `do_send` of work taking this many ms.
        Send(u64),
        /// A request whose sender gives up before the answer.
        Cancel,
        /// A request awaited: everything queued before it is handled by then.
        Await,
        /// The actor stops (through its plain address); what is queued is dropped with it.
        Halt,
        /// Let the actor run for a moment.
        Yield,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0u64..3).prop_map(Op::Send),
            2 => Just(Op::Cancel),
            1 => Just(Op::Await),
            1 => Just(Op::Yield),
            1 => Just(Op::Halt),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Over any schedule of sends, cancelled and awaited requests and a stop: the count
        /// rises by exactly one per message sent to a running actor, never exceeds what was
        /// sent, is zero whenever an awaited answer came back, and returns to zero once the
        /// actor has stopped, whatever was left in its mailbox.
        #[test]
        fn the_count_never_drifts(ops in proptest::collection::vec(op(), 1..40)) {
            let result: Result<(), String> = actix::System::new().block_on(async move {
                let slow = Probed::new(Slow.start());
                let mut sent = 0usize;
                for op in ops {
                    let before = slow.mailbox().queued;
                    match op {
                        Op::Send(ms) => {
                            slow.do_send(Work(ms));
                            let want = if slow.connected() { before + 1 } else { before };
                            if slow.connected() {
                                sent += 1;
                            }
                            if slow.mailbox().queued != want {
                                return Err(format!("after a send: {} queued, {want} expected", slow.mailbox().queued));
                            }
                        }
                        Op::Cancel => {
                            drop(slow.send(Work(0)));
                            sent += 1;
                        }
                        Op::Await => {
                            let answered = slow.send(Work(0)).await.is_ok();
                            sent += 1;
                            if answered && slow.mailbox().queued != 0 {
                                return Err(format!("{} queued after an answer", slow.mailbox().queued));
                            }
                        }
                        Op::Halt => {
                            slow.addr().do_send(Halt);
                            let deadline = std::time::Instant::now() + Duration::from_secs(5);
                            while slow.connected() && std::time::Instant::now() < deadline {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                        }
                        Op::Yield => tokio::time::sleep(Duration::from_millis(2)).await,
                    }
                    if slow.mailbox().queued > sent {
                        return Err(format!("{} queued but only {sent} sent", slow.mailbox().queued));
                    }
                }
                // Settle: an awaited request (or the actor's end) leaves nothing counted.
                if slow.connected() {
                    let _ = slow.send(Work(0)).await;
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                match slow.mailbox().queued {
                    0 => Ok(()),
                    n => Err(format!("{n} still counted at the end")),
                }
            });
            proptest::prop_assert_eq!(result, Ok(()));
        }
    }

    #[test]
    fn names_messages_by_their_short_type_name() {
        assert_eq!(short_type_name::<Work>(), "Work");
        assert_eq!(short_type_name::<Option<Work>>(), "Option");
    }
}
