//! Where a subtask's output goes: the outbox drained into bounded channels (backpressure),
//! the buffer-timeout flush, the snapshots handed to their writers, and the control messages
//! (checkpoint triggers and outcomes) acted upon between records.

use super::*;

/// Where a subtask's output goes and what it keeps track of while it runs.
pub(super) struct Outputs {
    /// The subtask's name, for errors.
    pub(super) name: String,
    /// The outbox and the output channels it is drained into.
    pub(super) channels: OutputChannels,
    /// When partially filled batches go (`execution.buffer-timeout`).
    pub(super) flush: FlushTimer,
    /// Checkpoint bookkeeping: snapshots being written, the unaligned one waiting.
    pub(super) snapshots: Snapshots,
    /// Control messages from the subtask's actor.
    pub(super) control: mpsc::UnboundedReceiver<SubtaskControl>,
    /// Which triggers to take, stop-with-savepoint, the final checkpoint (FLIP-147).
    pub(super) book: CheckpointBook,
    /// A source's reader position at its end.
    pub(super) final_source: Option<ByteBuf>,
    /// The TaskExecutor, named in the report that the input ended.
    pub(super) location: ResourceId,
}

/// The outbox the chain fills and the output channels it is drained into.
pub(super) struct OutputChannels {
    /// Where the chain's writers leave batches (and the subtask its barriers).
    pub(super) outbox: SharedOutbox,
    pub(super) senders: Vec<Sender<Element>>,
    /// Each output channel's priority lane (unaligned checkpoint barriers).
    pub(super) priority: Vec<UnboundedSender<CheckpointBarrier>>,
    /// Channels found full in the current pass of a drain.
    pub(super) stalled: Vec<bool>,
    /// Channels whose end of partition went out: nothing follows it. A checkpoint triggered
    /// while the final drain still waits for room (the end already queued) is taken with the
    /// subtask's final state; its barrier is not sent where the end went (the consumer counts
    /// an ended channel as aligned), since the producer's side of such a channel may be gone.
    pub(super) ended: Vec<bool>,
    /// Records in and out and time blocked on full outputs, for the REST API and the UI.
    pub(super) io: Arc<crate::job_view::SubtaskIo>,
    /// How many batches each channel may hold now (buffer debloating).
    pub(super) debloat: crate::debloat::Debloater,
}

/// When partially filled batches go: after `execution.buffer-timeout` (besides before every
/// wait for input and every in-band event, which the loop and the writers see to).
pub(super) struct FlushTimer {
    pub(super) registry: FlushRegistry,
    /// When partial batches last went, epoch ms.
    pub(super) last: i64,
    pub(super) timeout: i64,
}

impl FlushTimer {
    pub(super) fn new(registry: FlushRegistry, timeout: i64, now: i64) -> Self {
        Self { registry, last: now, timeout }
    }

    /// Whether the buffer timeout says partial batches should go now.
    #[inline]
    pub(super) fn due(&self, now: i64) -> bool {
        now - self.last >= self.timeout
    }

    /// Moves partially filled batches to the outbox (they are sent by the next drain).
    #[inline]
    pub(super) fn flush(&mut self, now: i64) {
        self.registry.flush_all();
        self.last = now;
    }
}

/// A subtask's checkpoint bookkeeping.
pub(super) struct Snapshots {
    pub(super) execution: ExecutionId,
    /// The JobMaster that deployed this subtask.
    pub(super) job_master: JobMasterGateway,
    pub(super) max_parallelism: u32,
    /// Snapshots handed to their writers and not settled yet.
    pub(super) in_flight: InFlightSnapshots,
    /// An unaligned snapshot waiting for its channel state (every input's position marker).
    pub(super) unaligned: Option<UnalignedSnapshot>,
    /// Local recovery: where snapshot copies are kept.
    pub(super) local: Option<Arc<LocalSnapshots>>,
}

/// Records in an element (0 for anything but a batch).
#[inline]
pub(super) fn records_in(el: &Element) -> u64 {
    match el {
        Element::Records { count, .. } => *count as u64,
        _ => 0,
    }
}

/// The synchronous part of an unaligned snapshot, kept until its channel state is known.
pub(super) struct UnalignedSnapshot {
    pub(super) barrier: CheckpointBarrier,
    pub(super) pending: PendingSnapshot,
    pub(super) sync_ms: u64,
}

/// Batches queued in the channel `tx` sends to (sent, not yet taken by its consumer).
#[inline]
fn held(tx: &Sender<Element>) -> usize {
    tx.max_capacity() - tx.capacity()
}

/// Why [`OutputChannels::drain_until`] stopped before everything was sent.
pub(super) enum DrainInterrupt {
    /// A control message arrived (sources: a checkpoint trigger must not wait for room).
    Control(SubtaskControl),
    /// The input gate needs attention (unaligned checkpoints).
    Gate(Interrupt),
}

impl OutputChannels {
    /// Sends everything the chain produced. A full channel holds back only its own elements
    /// (order within a channel is kept): what goes to other channels — a checkpoint barrier
    /// among them — leaves at once. The subtask then waits (backpressure) for the full one;
    /// while it waits, a control message (with `control`) or an input-gate interrupt (with
    /// `gate`) ends the wait: what is unsent goes back to the outbox, in order, and the
    /// interrupt is returned for the caller to act on before draining again.
    pub(super) async fn drain_until(
        &mut self,
        name: &str,
        control_rx: &mut mpsc::UnboundedReceiver<SubtaskControl>,
        cancel: &mut watch::Receiver<bool>,
        control: bool,
        mut gate: Option<(&mut InputGate, &dyn BatchEncoder)>,
    ) -> Result<Option<DrainInterrupt>, TaskOutcome> {
        loop {
            let mut queue = {
                let mut ob = self.outbox.borrow_mut();
                if ob.queue.is_empty() {
                    return Ok(None);
                }
                std::mem::take(&mut ob.queue)
            };
            self.debloat.sample(std::time::Instant::now());
            let mut deferred = std::collections::VecDeque::new();
            let mut any_stalled = false;
            for (ch, el) in queue.drain(..) {
                if any_stalled && self.stalled[ch] {
                    deferred.push_back((ch, el));
                    continue;
                }
                if self.ended.get(ch).copied().unwrap_or(false) && matches!(el, Element::Barrier(_)) {
                    continue;
                }
                let end = matches!(el, Element::EndOfPartition);
                let tx = self.senders.get(ch).ok_or_else(|| TaskError::msg(name, format!("no output channel {ch}")))?;
                let n = records_in(&el);
                if let Element::Watermark(w) = &el {
                    self.io.set_output_watermark(*w);
                }
                let sent =
                    if held(tx) >= self.debloat.limit(ch) { Err(TrySendError::Full(el)) } else { tx.try_send(el) };
                match sent {
                    Ok(()) => {
                        self.io.wrote(n);
                        self.debloat.sent(ch);
                        if end {
                            self.ended[ch] = true;
                        }
                    }
                    Err(TrySendError::Full(el)) => {
                        self.stalled[ch] = true;
                        any_stalled = true;
                        deferred.push_back((ch, el));
                    }
                    Err(TrySendError::Closed(_)) => {
                        return Err(peer_lost(name, "a downstream subtask stopped", cancel).await)
                    }
                }
            }
            if deferred.is_empty() {
                // Give the (now empty) buffer back so the next batch does not reallocate it.
                let mut ob = self.outbox.borrow_mut();
                if ob.queue.is_empty() {
                    ob.queue = queue;
                }
                return Ok(None);
            }
            self.stalled.iter_mut().for_each(|s| *s = false);
            let Some((ch, el)) = deferred.pop_front() else { continue };
            let tx = self.senders[ch].clone();
            let end = matches!(el, Element::EndOfPartition);
            let gate_event = async {
                match gate.as_mut() {
                    Some((g, enc)) => std::future::poll_fn(|cx| g.poll_interrupt(cx, *enc)).await,
                    None => futures::future::pending().await,
                }
            };
            let waiting = std::time::Instant::now();
            self.io.set_backpressured(true, 0);
            let io = self.io.clone();
            // Room for one more below the channel's limit: the queue's room less what the
            // limit keeps free (the permits reserved beyond the first are given back at once).
            let keep_free = tx.max_capacity().saturating_sub(self.debloat.limit(ch));
            // Some((why, el)): `el` was not sent, for `why` (None: the reservation came back
            // empty; try again).
            let interrupt = tokio::select! {
                permits = tx.reserve_many(keep_free + 1) => match permits.map(|mut p| p.next()) {
                    Ok(Some(permit)) => {
                        io.wrote(records_in(&el));
                        if let Element::Watermark(w) = &el {
                            io.set_output_watermark(*w);
                        }
                        permit.send(el);
                        self.debloat.sent(ch);
                        if end {
                            self.ended[ch] = true;
                        }
                        None
                    }
                    Ok(None) => Some((None, el)),
                    Err(_) => return Err(peer_lost(name, "a downstream subtask stopped", cancel).await),
                },
                c = control_rx.recv(), if control => match c {
                    Some(c) => Some((Some(DrainInterrupt::Control(c)), el)),
                    None => return Err(TaskOutcome::Canceled),
                },
                ev = gate_event => Some((Some(DrainInterrupt::Gate(ev)), el)),
                _ = cancel.changed() => return Err(TaskOutcome::Canceled),
            };
            self.io.set_backpressured(false, waiting.elapsed().as_nanos() as u64);
            let mut ob = self.outbox.borrow_mut();
            let result = match interrupt {
                Some((why, el)) => {
                    deferred.push_front((ch, el));
                    why
                }
                None => None,
            };
            deferred.append(&mut ob.queue);
            ob.queue = deferred;
            if result.is_some() {
                return Ok(result);
            }
        }
    }

    /// Queues checkpoint barrier `barrier` after every element produced so far on every
    /// output channel (the next drain sends it); an unaligned barrier also goes out at once on
    /// every priority lane.
    pub(super) fn queue_barrier(&self, barrier: &CheckpointBarrier) {
        if barrier.unaligned {
            for lane in &self.priority {
                // A closed lane is a consumer that stopped: the data path reports that.
                let _ = lane.send(barrier.clone());
            }
        }
        let mut ob = self.outbox.borrow_mut();
        for ch in 0..self.senders.len() {
            ob.queue.push_back((ch, Element::Barrier(barrier.clone())));
        }
    }
}

impl Snapshots {
    /// Hands a snapshot to a child that encodes, writes and acknowledges it.
    pub(super) fn write(
        &mut self,
        barrier: CheckpointBarrier,
        pending: PendingSnapshot,
        source: Option<SourceSnapshot>,
        (sync_ms, alignment_ms): (u64, u64),
    ) {
        let task = self.in_flight.start(barrier.id);
        let writer = SnapshotWriter {
            execution: self.execution,
            job_master: self.job_master.clone(),
            barrier,
            task,
            sync_ms,
            alignment_ms,
            local: self.local.clone(),
        };
        actix::spawn(writer.run(pending, source));
    }

    /// Keeps an unaligned snapshot until its channel state is complete; an older one still
    /// waiting is declined.
    pub(super) fn hold(&mut self, snapshot: UnalignedSnapshot) {
        if let Some(old) = self.unaligned.replace(snapshot) {
            self.decline(old.barrier.id, "a newer unaligned checkpoint started before its channel state was complete");
        }
    }

    /// The channel state of unaligned checkpoint `id` is complete (or failed): the snapshot
    /// goes to its writer (or the checkpoint is declined).
    pub(super) fn channel_state_complete(&mut self, id: u64, channels: Result<Vec<ChannelState>, TaskError>) {
        let Some(u) = self.unaligned.take_if(|u| u.barrier.id == id) else { return };
        match channels {
            Ok(channels) => {
                let mut pending = u.pending;
                pending.set_channels(channels);
                self.write(u.barrier, pending, None, (u.sync_ms, 0));
            }
            Err(reason) => self.decline(id, &format!("cannot record its channel state: {reason}")),
        }
    }

    /// Tells the JobMaster this subtask cannot contribute to checkpoint `id`.
    pub(super) fn decline(&self, id: u64, reason: &str) {
        let decline = DeclineCheckpoint { execution: self.execution, checkpoint_id: id, reason: reason.to_string() };
        self.job_master.do_send(decline);
    }

    /// Checkpoint `id` completed or was aborted: its in-flight snapshot work is settled (an
    /// aborted one's files deleted, its waiting unaligned snapshot dropped).
    pub(super) fn settle(&mut self, id: u64, completed: bool) {
        if completed {
            self.in_flight.completed(id);
        } else {
            self.in_flight.abort(id);
            if self.unaligned.as_ref().is_some_and(|u| u.barrier.id == id) {
                self.unaligned = None;
            }
        }
    }
}

impl Outputs {
    /// See [`OutputChannels::drain_until`]; `control`: whether a control message ends a wait.
    pub(super) async fn drain_until(
        &mut self,
        cancel: &mut watch::Receiver<bool>,
        control: bool,
        gate: Option<(&mut InputGate, &dyn BatchEncoder)>,
    ) -> Result<Option<DrainInterrupt>, TaskOutcome> {
        self.channels.drain_until(&self.name, &mut self.control, cancel, control, gate).await
    }

    /// A checkpoint reached this subtask's consistent point: everything before it is
    /// processed. Takes the synchronous part of the snapshot (a copy) and queues the barrier
    /// after every record produced so far on every output channel (the caller's next drain
    /// sends it); an unaligned barrier also goes out at once on every priority lane.
    /// Encoding, writing and acknowledging are left to a child task while processing goes
    /// on — for an unaligned snapshot of a subtask with inputs (`await_channels`), once the
    /// channel state is complete ([`Snapshots::channel_state_complete`]).
    pub(super) fn checkpoint(
        &mut self,
        barrier: CheckpointBarrier,
        head: &mut dyn Checkpointable,
        await_channels: bool,
    ) -> Result<(), TaskOutcome> {
        let started = std::time::Instant::now();
        let (pending, source) = head.take_snapshot(self.snapshots.max_parallelism, barrier.id)?;
        let sync_ms = started.elapsed().as_millis() as u64;
        let alignment_ms = self.channels.io.alignment_ms(barrier.id);
        if !self.book.taken(barrier.id) {
            // After the end of input: the output channels ended, the barrier goes nowhere.
            self.snapshots.write(barrier, pending, source, (sync_ms, alignment_ms));
            return Ok(());
        }
        // Partial batches go before the barrier (the buffer timeout's clock is not reset).
        self.flush.registry.flush_all();
        self.channels.queue_barrier(&barrier);
        if barrier.unaligned && await_channels {
            self.snapshots.hold(UnalignedSnapshot { barrier, pending, sync_ms });
            return Ok(());
        }
        self.snapshots.write(barrier, pending, source, (sync_ms, alignment_ms));
        Ok(())
    }

    /// The subtask is ending: checkpoint outcomes that arrived but were not handled still
    /// decide which snapshot files go (an aborted checkpoint's files are deleted even if
    /// acknowledged; the rest is decided when the in-flight snapshots are dropped).
    pub(super) fn settle_checkpoints(&mut self) {
        while let Ok(c) = self.control.try_recv() {
            if let SubtaskControl::CheckpointDone { id, completed } = c {
                self.snapshots.settle(id, completed);
            }
        }
    }

    /// Handles control messages that arrived, without waiting.
    pub(super) fn poll_control(&mut self, head: &mut dyn Checkpointable) -> Result<(), TaskOutcome> {
        while let Ok(c) = self.control.try_recv() {
            self.on_control(c, head)?;
        }
        Ok(())
    }

    /// Acts on a control message; what it queues is sent by the caller's next drain.
    pub(super) fn on_control(&mut self, c: SubtaskControl, head: &mut dyn Checkpointable) -> Result<(), TaskOutcome> {
        match c {
            SubtaskControl::TriggerCheckpoint { barrier, stop_source } => {
                match self.book.on_trigger(barrier, stop_source) {
                    OnTrigger::Take(barrier) => self.checkpoint(barrier, head, false),
                    OnTrigger::Nothing => Ok(()),
                }
            }
            SubtaskControl::CheckpointDone { id, completed } => {
                self.book.done(id, completed);
                self.snapshots.settle(id, completed);
                head.notify(id, completed)?;
                Ok(())
            }
        }
    }

    /// The JobMaster that deployed this subtask.
    pub(super) fn job_master(&self) -> &JobMasterGateway {
        &self.snapshots.job_master
    }

    /// Tells the JobMaster that this subtask's input ended and it waits for a final
    /// checkpoint: the coordinator triggers it directly from now on.
    pub(super) fn report_input_ended(&self) {
        self.job_master().do_send(TaskStateUpdate {
            execution: self.snapshots.execution,
            state: TaskState::InputEnded,
            location: self.location.clone(),
            final_source: None,
        });
    }
}
