//! The one loop every subtask runs ([`run_task`]): its input (a source reader or an input
//! gate) takes a step, then one after-step policy drains, fires timers, flushes or ends the
//! input ([`finish`], with the final checkpoint of FLIP-147), and lets the slot's other
//! subtasks run.

use super::*;

/// How long a subtask whose peer vanished waits to be cancelled before it reports the loss
/// as its own failure.
pub(super) const PEER_LOST_GRACE: Duration = Duration::from_secs(30);

/// How long a subtask waits for its JobMaster to confirm its end.
pub(super) const CONFIRM_END_TIMEOUT: Duration = Duration::from_secs(60);

/// Before a subtask's operators see the end of their input — where a two-phase-commit sink
/// commits its last transaction on its own, with no checkpoint after it — its JobMaster
/// confirms that this attempt still counts ([`crate::gateway::ConfirmEnd`]). A TaskManager
/// frozen past its heartbeat timeout and thawed after its work restarted elsewhere is refused
/// (or finds its link gone), and its task fails without committing.
pub(super) async fn confirm_end(out: &mut Outputs, cancel: &mut watch::Receiver<bool>) -> Result<(), TaskOutcome> {
    let jm = out.job_master().clone();
    let execution = out.snapshots.execution;
    let answer = tokio::select! {
        r = tokio::time::timeout(CONFIRM_END_TIMEOUT, jm.confirm_end(ConfirmEnd { execution })) => r,
        _ = cancel.changed() => return Err(TaskOutcome::Canceled),
    };
    match answer {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(why))) => {
            Err(TaskError::msg(&out.name, format!("the job master refused this attempt's end: {why}")).into())
        }
        Ok(Err(why)) => Err(TaskError::msg(&out.name, format!("cannot reach the job master to end: {why}")).into()),
        Err(_) => Err(TaskError::msg(
            &out.name,
            format!("the job master did not confirm the end within {CONFIRM_END_TIMEOUT:?}"),
        )
        .into()),
    }
}

/// A peer subtask vanished without ending its stream: it failed, and its own report (the
/// root cause) is on its way to the JobMaster, which will cancel this subtask. Reporting the
/// loss now could overtake that report and become the job's root cause, so wait to be
/// cancelled; only if that does not happen, fail with the loss.
pub(super) async fn peer_lost(name: &str, what: &str, cancel: &mut watch::Receiver<bool>) -> TaskOutcome {
    if *cancel.borrow() {
        return TaskOutcome::Canceled;
    }
    tokio::select! {
        _ = tokio::time::sleep(PEER_LOST_GRACE) => TaskOutcome::Failed(TaskError::msg(name, what)),
        _ = cancel.changed() => TaskOutcome::Canceled,
    }
}

pub(super) async fn sleep_or_cancel(d: Duration, cancel: &mut watch::Receiver<bool>) -> Result<(), TaskOutcome> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = cancel.changed() => Err(TaskOutcome::Canceled),
    }
}

/// What one step of a subtask's input came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Input was processed (a reader's poll, an input element): the after-step policy runs.
    Processed,
    /// Nothing to process now: partial batches go, outputs are drained, then the input waits.
    Idle,
    /// Stop-with-savepoint completed: the input ends here, without asking the JobMaster (the
    /// operators downstream ask when their input ends).
    Stop,
}

/// What the loop does once an idle input's wait is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Woken {
    /// Something was handled (input, a due timer, a control message): the after-step policy runs.
    Handled,
    /// Look at the input again first (a source: a trigger may have stopped it meanwhile).
    Retry,
}

/// What the after-step policy does, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct AfterStep {
    /// Fire the chain's due processing-time timers (then drain).
    pub(super) timers: bool,
    /// The input ended: the end-of-input sequence runs (it flushes and drains itself).
    pub(super) end: bool,
    /// The buffer timeout passed: flush partial batches (then drain).
    pub(super) flush: bool,
}

impl AfterStep {
    /// The policy after every step (its output was drained): at `now`, with the chain's next
    /// timer at `next_timer`, whether the input `ended`, and partial batches last flushed as
    /// `flush` says.
    #[inline]
    pub(super) fn at(now: i64, next_timer: Option<i64>, ended: bool, flush: &FlushTimer) -> Self {
        Self { timers: next_timer.is_some_and(|t| now >= t), end: ended, flush: !ended && flush.due(now) }
    }
}

/// A subtask's input: a source reader or an input gate, with the head it feeds. An enum, not a
/// trait object: its methods are called a few times per batch on the hot path.
// One per subtask, in its future: the gate's size costs nothing, a box would cost a pointer
// chase per call.
#[allow(clippy::large_enum_variant)]
pub(super) enum TaskInput {
    Source(SourceInput),
    Gate(GateInput),
}

/// The data loop of every subtask: one step of input at a time, then one drain, timer and
/// flush policy ([`AfterStep`]), and one end-of-input sequence ([`end_of_input`]).
pub(super) async fn run_task(
    input: &mut TaskInput,
    replay: Vec<ChannelState>,
    out: &mut Outputs,
    cancel: &mut watch::Receiver<bool>,
) -> Result<(), TaskOutcome> {
    input.replay(replay, out, cancel).await?;
    if input.ended() {
        return finish(input, out, cancel, true).await;
    }
    loop {
        match input.next_step(out, cancel).await? {
            Step::Processed => {}
            Step::Idle => {
                // About to wait for input: partial batches go now.
                out.flush.flush(riffle_api::time::now_ms());
                input.drain(out, cancel).await?;
                if input.wait(out, cancel).await? == Woken::Retry {
                    continue;
                }
            }
            Step::Stop => return finish(input, out, cancel, false).await,
        }
        input.drain(out, cancel).await?;
        let now = riffle_api::time::now_ms();
        let after = AfterStep::at(now, input.next_processing_time(), input.ended(), &out.flush);
        if after.timers {
            input.processing_time(now)?;
            input.drain(out, cancel).await?;
        }
        if after.end {
            return finish(input, out, cancel, true).await;
        }
        if after.flush {
            out.flush.flush(now);
            input.drain(out, cancel).await?;
        }
        input.pace(out).await;
    }
}

/// The end of a subtask: the end-of-input sequence, then, if its chain waits for one, the
/// final checkpoint (FLIP-147): the subtask reports that its input ended, takes the
/// checkpoints it is triggered for (a trigger it kept first) and ends once one of them
/// completed.
pub(super) async fn finish(
    input: &mut TaskInput,
    out: &mut Outputs,
    cancel: &mut watch::Receiver<bool>,
    confirm: bool,
) -> Result<(), TaskOutcome> {
    end_of_input(&mut Ending { input, out, cancel }, confirm).await?;
    let kept = out.book.input_ended();
    if !out.book.waits_final() {
        return Ok(());
    }
    out.report_input_ended();
    if let Some(barrier) = kept {
        input.control(SubtaskControl::TriggerCheckpoint { barrier, stop_source: false }, out)?;
    }
    while !out.book.may_finish() {
        let c = tokio::select! {
            c = out.control.recv() => c,
            _ = cancel.changed() => return Err(TaskOutcome::Canceled),
        };
        match c {
            Some(c) => input.control(c, out)?,
            None => return Err(TaskOutcome::Canceled),
        }
    }
    Ok(())
}

/// The end of a subtask's input, step by step: a trait so that the order can be tested
/// without actors.
pub(super) trait EndOfInput {
    /// The JobMaster confirms that this attempt still counts ([`confirm_end`]).
    async fn confirm_end(&mut self) -> Result<(), TaskOutcome>;
    /// The head ends its input: a source's final watermark and end of input, the operators'
    /// end of input (end of partition downstream).
    fn end_input(&mut self) -> Result<(), TaskOutcome>;
    /// Partial batches go.
    fn flush(&mut self);
    /// Everything goes out.
    async fn drain(&mut self) -> Result<(), TaskOutcome>;
}

/// The one end-of-input sequence: confirm the end with the JobMaster (unless `confirm` is
/// false: stop-with-savepoint), end the input, flush, final drain.
pub(super) async fn end_of_input(task: &mut impl EndOfInput, confirm: bool) -> Result<(), TaskOutcome> {
    if confirm {
        task.confirm_end().await?;
    }
    task.end_input()?;
    task.flush();
    task.drain().await
}

/// A running subtask at its end.
pub(super) struct Ending<'a> {
    pub(super) input: &'a mut TaskInput,
    pub(super) out: &'a mut Outputs,
    pub(super) cancel: &'a mut watch::Receiver<bool>,
}

impl EndOfInput for Ending<'_> {
    async fn confirm_end(&mut self) -> Result<(), TaskOutcome> {
        confirm_end(self.out, self.cancel).await
    }
    fn end_input(&mut self) -> Result<(), TaskOutcome> {
        match self.input {
            TaskInput::Source(s) => {
                // What later checkpoints keep for it once it finished (FLIP-147).
                let reader = s.head.reader_state()?;
                let bytes = rmp_serde::to_vec(&reader)
                    .map_err(|e| TaskError::msg(&self.out.name, format!("cannot encode the reader's position: {e}")))?;
                self.out.final_source = Some(ByteBuf::from(bytes));
                s.head.finish()?
            }
            TaskInput::Gate(g) => g.head.end_input()?,
        }
        Ok(())
    }
    fn flush(&mut self) {
        self.out.flush.flush(riffle_api::time::now_ms());
    }
    async fn drain(&mut self) -> Result<(), TaskOutcome> {
        self.input.drain(self.out, self.cancel).await
    }
}

impl TaskInput {
    /// Acts on a control message with this input's head.
    pub(super) fn control(&mut self, c: SubtaskControl, out: &mut Outputs) -> Result<(), TaskOutcome> {
        match self {
            TaskInput::Source(s) => out.on_control(c, &mut s.head),
            TaskInput::Gate(g) => out.on_control(c, &mut g.head),
        }
    }

    /// An unaligned checkpoint's in-flight records, processed before anything new.
    pub(super) async fn replay(
        &mut self,
        replay: Vec<ChannelState>,
        out: &mut Outputs,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), TaskOutcome> {
        match self {
            // A source has no input channels, hence no channel state.
            TaskInput::Source(_) => Ok(()),
            TaskInput::Gate(g) => g.replay(replay, out, cancel).await,
        }
    }

    /// Takes the next step of input.
    pub(super) async fn next_step(
        &mut self,
        out: &mut Outputs,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<Step, TaskOutcome> {
        match self {
            TaskInput::Source(s) => s.next_step(out, cancel).await,
            TaskInput::Gate(g) => g.next_step(out, cancel).await,
        }
    }

    /// Waits for input (or a timer, or a control message) after [`Step::Idle`].
    pub(super) async fn wait(
        &mut self,
        out: &mut Outputs,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<Woken, TaskOutcome> {
        match self {
            TaskInput::Source(s) => s.wait(out, cancel).await,
            TaskInput::Gate(g) => g.wait(out, cancel).await,
        }
    }

    /// Sends everything the chain produced, awaiting room (backpressure); what must not wait
    /// for room meanwhile is handled at once: a source's control messages (checkpoint
    /// triggers), an operator subtask's unaligned barriers and completed channel state.
    pub(super) async fn drain(
        &mut self,
        out: &mut Outputs,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), TaskOutcome> {
        match self {
            TaskInput::Source(s) => drain_source(out, &mut s.head, cancel).await,
            TaskInput::Gate(g) => drain_operators(out, &mut g.head, &mut g.gate, cancel).await,
        }
    }

    /// The chain's earliest processing-time timer.
    #[inline]
    pub(super) fn next_processing_time(&self) -> Option<i64> {
        match self {
            TaskInput::Source(s) => s.head.next_processing_time(),
            TaskInput::Gate(g) => g.head.next_processing_time(),
        }
    }

    /// Fires the chain's processing-time timers due at `now`.
    pub(super) fn processing_time(&mut self, now: i64) -> Result<(), TaskError> {
        match self {
            TaskInput::Source(s) => s.head.processing_time(now),
            TaskInput::Gate(g) => g.head.processing_time(now),
        }
    }

    /// Whether the input ended: the reader said so, or every input channel delivered its
    /// end of partition.
    #[inline]
    pub(super) fn ended(&self) -> bool {
        match self {
            TaskInput::Source(s) => s.status == ReadStatus::EndOfInput,
            TaskInput::Gate(g) => g.gate.remaining() == 0,
        }
    }

    /// Lets the slot's other subtasks and this subtask's own actor (cancellation, control
    /// messages, snapshot writers) run on the shared slot thread.
    pub(super) async fn pace(&mut self, out: &Outputs) {
        match self {
            TaskInput::Source(s) => {
                if s.status == ReadStatus::MoreAvailable {
                    // A poll is a few thousand records, so this costs well under a
                    // nanosecond per record.
                    tokio::task::yield_now().await;
                }
            }
            TaskInput::Gate(g) => {
                if g.pacer.due(std::time::Instant::now) {
                    // A subtask that always has input would otherwise never let the others on
                    // its thread run.
                    tokio::task::yield_now().await;
                    g.pacer.yielded(std::time::Instant::now());
                    out.channels.io.queued_in.store(g.gate.queued() as u64, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    }
}

/// A source subtask's input: its reader, polled through the head.
pub(super) struct SourceInput {
    pub(super) head: Box<dyn SourceHead>,
    /// What the last poll said (before the first: more available).
    pub(super) status: ReadStatus,
    /// Records emitted as last added to the job's counters.
    pub(super) published: u64,
    /// Skipped malformed records as last added to the job's counters.
    pub(super) published_skipped: u64,
    pub(super) counters: Arc<JobCounters>,
    /// After the enumerator answered a request with no split (a continuous source waiting
    /// for new files): when to ask again, and the wait after the next empty answer.
    pub(super) split_retry: Option<(std::time::Instant, Duration)>,
}

/// The first wait before asking an enumerator again after it had no split.
const SPLIT_RETRY_MIN: Duration = Duration::from_millis(10);
/// The longest (the wait doubles after each empty answer, so an idle continuous source asks
/// a few times a second, and a new file is picked up within this of its discovery).
const SPLIT_RETRY_MAX: Duration = Duration::from_millis(200);

impl SourceInput {
    pub(super) fn new(head: Box<dyn SourceHead>, counters: Arc<JobCounters>) -> Self {
        Self {
            head,
            status: ReadStatus::MoreAvailable,
            published: 0,
            published_skipped: 0,
            counters,
            split_retry: None,
        }
    }

    /// Handles control messages that arrived, then polls the reader once — unless
    /// stop-with-savepoint holds it back or ends it, or the last poll found nothing (or no
    /// split) to read: then the source is idle.
    pub(super) async fn next_step(
        &mut self,
        out: &mut Outputs,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<Step, TaskOutcome> {
        if *cancel.borrow() {
            return Err(TaskOutcome::Canceled);
        }
        out.poll_control(&mut self.head)?;
        drain_source(out, &mut self.head, cancel).await?;
        if out.book.stop_now() {
            // Stop-with-savepoint completed: end here, nothing after the savepoint's barrier.
            return Ok(Step::Stop);
        }
        if out.book.holding() || matches!(self.status, ReadStatus::NothingAvailable | ReadStatus::NeedSplits) {
            return Ok(Step::Idle);
        }
        self.status = self.head.poll()?;
        let emitted = self.head.records_emitted();
        self.counters.source_records.fetch_add(emitted - self.published, std::sync::atomic::Ordering::Relaxed);
        self.published = emitted;
        let skipped = self.head.records_skipped();
        if skipped > self.published_skipped {
            self.counters
                .source_records_skipped
                .fetch_add(skipped - self.published_skipped, std::sync::atomic::Ordering::Relaxed);
            self.published_skipped = skipped;
        }
        Ok(Step::Processed)
    }

    /// Waits for what the source lacks: the savepoint it stops with to complete (emitting
    /// nothing meanwhile), splits from the enumerator, or data (10 ms at most, less if a
    /// timer is due sooner; a control message ends the wait).
    pub(super) async fn wait(
        &mut self,
        out: &mut Outputs,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<Woken, TaskOutcome> {
        if out.book.holding() {
            tokio::select! {
                c = out.control.recv() => if let Some(c) = c {
                    out.on_control(c, &mut self.head)?;
                },
                _ = cancel.changed() => return Err(TaskOutcome::Canceled),
            }
            return Ok(Woken::Retry);
        }
        if out.book.stop_now() {
            // The savepoint completed while the outputs drained.
            return Ok(Woken::Retry);
        }
        match std::mem::replace(&mut self.status, ReadStatus::MoreAvailable) {
            ReadStatus::NeedSplits => {
                if let Some((at, _)) = self.split_retry {
                    let mut wait = at.saturating_duration_since(std::time::Instant::now());
                    if let Some(t) = self.head.next_processing_time() {
                        // A timer due sooner: ask now, the poll after the answer fires it.
                        let until = (t - riffle_api::time::now_ms()).max(0) as u64;
                        wait = wait.min(Duration::from_millis(until));
                    }
                    if !wait.is_zero() {
                        // Control messages (checkpoint barriers) are served while waiting.
                        tokio::select! {
                            r = sleep_or_cancel(wait, cancel) => r?,
                            c = out.control.recv() => if let Some(c) = c {
                                out.on_control(c, &mut self.head)?;
                                self.status = ReadStatus::NeedSplits;
                                return Ok(Woken::Retry);
                            },
                        }
                    }
                }
                let execution = out.snapshots.execution;
                let jm = out.job_master().clone();
                let resp = tokio::select! {
                    r = jm.request_splits(SplitRequest { execution }) => r,
                    _ = cancel.changed() => return Err(TaskOutcome::Canceled),
                };
                let resp = resp
                    .map_err(|err| TaskError::msg(&out.name, format!("cannot reach the source coordinator: {err}")))?
                    .map_err(|err| TaskError::msg(&out.name, format!("split enumerator failed: {err}")))?;
                // Nothing yet, but more may come: ask again after a growing wait.
                self.split_retry = match (resp.splits.is_empty() && !resp.no_more_splits, self.split_retry) {
                    (false, _) => None,
                    (true, None) => Some((std::time::Instant::now() + SPLIT_RETRY_MIN, SPLIT_RETRY_MIN)),
                    (true, Some((_, last))) => {
                        let next = (last * 2).min(SPLIT_RETRY_MAX);
                        Some((std::time::Instant::now() + next, next))
                    }
                };
                self.head.add_splits(resp.splits)?;
                if resp.no_more_splits {
                    self.head.no_more_splits();
                }
            }
            ReadStatus::NothingAvailable => {
                let now = riffle_api::time::now_ms();
                let wait = self.head.next_processing_time().map(|t| (t - now).clamp(0, 10)).unwrap_or(10);
                tokio::select! {
                    r = sleep_or_cancel(Duration::from_millis(wait as u64), cancel) => r?,
                    c = out.control.recv() => if let Some(c) = c {
                        out.on_control(c, &mut self.head)?;
                    },
                }
            }
            ReadStatus::MoreAvailable | ReadStatus::EndOfInput => {}
        }
        Ok(Woken::Retry)
    }
}

/// An operator subtask's input: its input gate, feeding the vertex head.
pub(super) struct GateInput {
    pub(super) head: Box<dyn VertexHead>,
    pub(super) gate: InputGate,
    /// What the gate's watermark valve decided, to apply to the head (reused buffer).
    pub(super) events: Vec<GateEvent>,
    pub(super) pacer: Pacer,
}

impl GateInput {
    pub(super) fn new(head: Box<dyn VertexHead>, gate: InputGate) -> Self {
        Self { head, gate, events: Vec::new(), pacer: Pacer::new(std::time::Instant::now()) }
    }

    /// Processes an unaligned checkpoint's in-flight records (restored channel state).
    pub(super) async fn replay(
        &mut self,
        replay: Vec<ChannelState>,
        out: &mut Outputs,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), TaskOutcome> {
        for channel in replay {
            for batch in &channel.batches {
                self.head.push_encoded(channel.input as usize, batch)?;
                drain_operators(out, &mut self.head, &mut self.gate, cancel).await?;
            }
        }
        Ok(())
    }

    /// Processes the next element of any input channel, if one is there.
    pub(super) async fn next_step(
        &mut self,
        out: &mut Outputs,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<Step, TaskOutcome> {
        // While a capture is incomplete, reading ahead frees room that producers on this
        // thread fill once it yields: pull their data up to the markers before the next
        // (possibly slow) batch, so the checkpoint does not wait for it.
        while self.gate.read_ahead(&self.head) {
            tokio::task::yield_now().await;
        }
        finish_capture(out, &mut self.gate);
        match self.gate.try_next(&self.head) {
            Some(d) => {
                self.deliver(d, out, cancel).await?;
                Ok(Step::Processed)
            }
            None => Ok(Step::Idle),
        }
    }

    /// Waits for input, the chain's next timer or a control message, and processes what
    /// arrived.
    pub(super) async fn wait(
        &mut self,
        out: &mut Outputs,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<Woken, TaskOutcome> {
        let now = riffle_api::time::now_ms();
        let wait = self.head.next_processing_time().map(|t| (t - now).max(0) as u64);
        let timer = async {
            match wait {
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                None => futures::future::pending::<()>().await,
            }
        };
        out.channels.io.set_idle(true, 0);
        let io = out.channels.io.clone();
        let woke = tokio::select! {
            d = std::future::poll_fn(|cx| self.gate.poll_next(cx, &self.head)) => Some(d),
            _ = timer => None,
            c = out.control.recv() => {
                if let Some(c) = c {
                    out.on_control(c, &mut self.head)?;
                }
                None
            }
            _ = cancel.changed() => return Err(TaskOutcome::Canceled),
        };
        io.set_idle(false, self.gate.queued());
        if let Some(d) = woke {
            self.deliver(d, out, cancel).await?;
        }
        Ok(Woken::Handled)
    }

    /// Acts on what the gate delivered. A lost channel fails the subtask (after the grace
    /// for its cancellation); a completed capture is handed over by the next step.
    pub(super) async fn deliver(
        &mut self,
        d: Delivery,
        out: &mut Outputs,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), TaskOutcome> {
        match d {
            Delivery::Element { channel, element } => self.on_element(channel, element, out),
            Delivery::ChannelLost { .. } => {
                let why = "an upstream subtask stopped before the end of its partition";
                Err(peer_lost(&out.name, why, cancel).await)
            }
            Delivery::CaptureComplete => Ok(()),
        }
    }

    /// Processes element `element` of channel `ch`.
    #[inline]
    pub(super) fn on_element(&mut self, ch: usize, element: Element, out: &mut Outputs) -> Result<(), TaskOutcome> {
        let head = &mut self.head;
        let gate = &mut self.gate;
        let events = &mut self.events;
        match element {
            Element::Records { batch, count } => {
                out.channels.io.read(count as u64);
                // Between records, an unaligned barrier or the others on this thread (a
                // source's trigger, snapshot writers) may ask for the rest to wait.
                let input = gate.input_of[ch];
                let pacer = &self.pacer;
                let mut pause = || gate.priority_pending() || pacer.overdue();
                if let Some((count, rest)) = head.push_batch_until(input, batch, &mut pause)? {
                    out.channels.io.read_back(count as u64);
                    gate.push_front(ch, Element::Records { count, batch: rest });
                }
            }
            Element::Watermark(w) => gate.on_watermark(ch, w, events),
            Element::Idle(b) => gate.on_idle(ch, b, events),
            Element::EndOfPartition => {
                if let Some(input) = gate.on_end(ch, events) {
                    for ev in events.drain(..) {
                        apply(head, ev)?;
                    }
                    head.end_of_input(input)?;
                }
            }
            Element::Barrier(b) if b.unaligned => start_unaligned(out, head, gate, b)?,
            Element::Barrier(b) => gate.on_barrier(ch, b),
        }
        if let Some(barrier) = gate.take_completed_barrier() {
            for ev in events.drain(..) {
                apply(head, ev)?;
            }
            out.checkpoint(barrier, head, false)?;
        }
        for ev in events.drain(..) {
            apply(head, ev)?;
        }
        Ok(())
    }
}

/// A busy operator subtask yields its thread at least this often (slow records make 16
/// batches take seconds).
pub(super) const YIELD_EVERY: Duration = Duration::from_millis(2);

/// A busy operator subtask yields its thread at least every this many input steps.
pub(super) const YIELD_EVERY_STEPS: u32 = 16;

/// When a busy operator subtask lets the others on its slot's thread run: every
/// [`YIELD_EVERY_STEPS`] steps or [`YIELD_EVERY`], whichever comes first; a head asks
/// [`Pacer::overdue`] every 64 records of a batch.
pub(super) struct Pacer {
    pub(super) steps: u32,
    pub(super) last_yield: std::time::Instant,
}

impl Pacer {
    pub(super) fn new(now: std::time::Instant) -> Self {
        Self { steps: 0, last_yield: now }
    }

    /// Counts a step; whether the subtask should yield now (`now` is read only if the step
    /// count does not say so already).
    #[inline]
    pub(super) fn due(&mut self, now: impl FnOnce() -> std::time::Instant) -> bool {
        self.steps = self.steps.wrapping_add(1);
        self.steps.is_multiple_of(YIELD_EVERY_STEPS) || now().duration_since(self.last_yield) >= YIELD_EVERY
    }

    /// The subtask yielded at `now`.
    #[inline]
    pub(super) fn yielded(&mut self, now: std::time::Instant) {
        self.last_yield = now;
    }

    /// Whether the subtask ran longer than [`YIELD_EVERY`] without yielding.
    #[inline]
    pub(super) fn overdue(&self) -> bool {
        self.last_yield.elapsed() >= YIELD_EVERY
    }
}

/// Drains a source's outputs; a control message that arrives while it waits for room (a
/// checkpoint trigger, above all) is handled at once instead of after the backlog.
pub(super) async fn drain_source(
    out: &mut Outputs,
    head: &mut Box<dyn SourceHead>,
    cancel: &mut watch::Receiver<bool>,
) -> Result<(), TaskOutcome> {
    while let Some(interrupt) = out.drain_until(cancel, true, None).await? {
        if let DrainInterrupt::Control(c) = interrupt {
            out.on_control(c, head)?;
        }
    }
    Ok(())
}

/// Drains an operator subtask's outputs. While it waits for room, an unaligned checkpoint's
/// barrier starts the snapshot at once, and channel state that became complete goes to its
/// writer: neither waits for the backlog (FLIP-76).
pub(super) async fn drain_operators(
    out: &mut Outputs,
    head: &mut Box<dyn VertexHead>,
    gate: &mut InputGate,
    cancel: &mut watch::Receiver<bool>,
) -> Result<(), TaskOutcome> {
    loop {
        match out.drain_until(cancel, false, Some((&mut *gate, &*head))).await? {
            None => return Ok(()),
            Some(DrainInterrupt::Gate(Interrupt::Barrier(_, barrier))) => start_unaligned(out, head, gate, barrier)?,
            Some(DrainInterrupt::Gate(Interrupt::CaptureComplete)) => finish_capture(out, gate),
            Some(DrainInterrupt::Control(c)) => out.on_control(c, head)?,
        }
    }
}

/// The first barrier of an unaligned checkpoint arrived: snapshot now, forward the barrier,
/// and record in-flight input until every channel's position marker.
pub(super) fn start_unaligned(
    out: &mut Outputs,
    head: &mut Box<dyn VertexHead>,
    gate: &mut InputGate,
    barrier: CheckpointBarrier,
) -> Result<(), TaskOutcome> {
    let id = barrier.id;
    out.checkpoint(barrier, head, true)?;
    gate.start_capture(id, &*head);
    finish_capture(out, gate);
    Ok(())
}

/// Hands complete channel state to the waiting unaligned snapshot.
#[inline]
pub(super) fn finish_capture(out: &mut Outputs, gate: &mut InputGate) {
    if let Some((id, channels)) = gate.take_completed_capture() {
        out.snapshots.channel_state_complete(id, channels);
    }
}

pub(super) fn apply(head: &mut Box<dyn VertexHead>, ev: GateEvent) -> Result<(), TaskError> {
    match ev {
        GateEvent::Watermark(w) => head.watermark(w),
        GateEvent::Idle(b) => head.idle(b),
    }
}
