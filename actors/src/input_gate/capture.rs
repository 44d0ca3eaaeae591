//! The channel state of unaligned checkpoints (FLIP-76): which elements read from the input
//! channels were in flight when the subtask took its snapshot.
//!
//! The subtask snapshots at the first barrier of a checkpoint, on any channel (priority lane
//! or, when it comes first, the in-band position marker). From then on every batch read from
//! a channel is recorded until that channel's marker, or its end; batches read ahead before
//! the snapshot and not processed yet are recorded too. The capture is complete when every
//! channel delivered its marker or ended. Barriers and markers of a checkpoint no newer than
//! the newest one started here are stale. Pure bookkeeping, no channels: the gate feeds it
//! what it reads and does what it answers, and every rule is a row in the tests' table.

use riffle_api::snapshot::ChannelState;
use riffle_api::{Element, TaskError};
use serde_bytes::ByteBuf;

/// What to do with an element read from a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Deliver it for processing.
    Deliver,
    /// Record its batch as channel state (see [`ChannelStateCapture::record`]), then deliver it.
    Record,
    /// Drop it: a position marker (now recorded as reached) or a stale barrier.
    Consume,
}

/// The capture of unaligned checkpoints' channel state for one subtask's input channels.
#[derive(Debug)]
pub struct ChannelStateCapture {
    /// Channels that delivered end of partition: nothing of theirs is in flight.
    ended: Vec<bool>,
    /// The newest unaligned checkpoint started here: barriers of it and older ones are stale.
    newest: u64,
    /// A position marker that arrived before any barrier of its checkpoint and was delivered
    /// as the start of it: its channel has nothing in flight for that checkpoint.
    inband: Option<(u64, usize)>,
    /// The checkpoint whose channel state is being recorded.
    active: Option<Capture>,
}

/// The channel state of one unaligned checkpoint, being recorded.
#[derive(Debug)]
struct Capture {
    id: u64,
    /// Channels whose position marker arrived (or that ended).
    reached: Vec<bool>,
    /// Encoded batches per channel.
    batches: Vec<Vec<ByteBuf>>,
    /// The first encoding failure: the checkpoint is declined, the job goes on.
    error: Option<TaskError>,
}

impl ChannelStateCapture {
    /// A capture over `channels` channels, recording nothing yet.
    pub fn new(channels: usize) -> Self {
        Self { ended: vec![false; channels], newest: 0, inband: None, active: None }
    }

    /// Whether a barrier of checkpoint `id` starts a checkpoint (it is newer than every one
    /// started here); older ones, and copies of started ones, are stale.
    #[inline]
    pub fn is_new(&self, id: u64) -> bool {
        id > self.newest
    }

    /// Whether channel `ch` is being recorded (a capture is on and the channel's marker has
    /// not arrived nor has it ended).
    #[inline]
    pub fn capturing(&self, ch: usize) -> bool {
        self.active.as_ref().is_some_and(|c| !c.reached[ch] && !self.ended[ch])
    }

    /// Decides what `e`, read from channel `ch`'s queue, is (`None`: the channel closed
    /// before its end of partition). A marker of the capture ends its channel's recording;
    /// a marker of a checkpoint not started yet starts it (its channel has nothing in
    /// flight); a batch of a channel being recorded is recorded.
    #[inline]
    pub fn admit(&mut self, ch: usize, e: Option<&Element>) -> Admit {
        let capturing = self.capturing(ch);
        match e {
            Some(Element::Barrier(b)) if b.unaligned => {
                if capturing {
                    if let Some(c) = self.active.as_mut().filter(|c| c.id == b.id) {
                        c.reached[ch] = true;
                        return Admit::Consume;
                    }
                }
                if self.is_new(b.id) {
                    // The marker came first (its barrier was not seen yet): it starts the
                    // checkpoint, and this channel has nothing in flight for it.
                    self.inband = Some((b.id, ch));
                    return Admit::Deliver;
                }
                Admit::Consume
            }
            Some(Element::Records { .. }) if capturing => Admit::Record,
            Some(Element::EndOfPartition) | None if capturing => {
                if let Some(c) = &mut self.active {
                    c.reached[ch] = true;
                }
                Admit::Deliver
            }
            _ => Admit::Deliver,
        }
    }

    /// Records a batch of channel `ch` that [`ChannelStateCapture::admit`] or
    /// [`ChannelStateCapture::unprocessed`] said to record; `encode` encodes it (only the
    /// vertex head knows the record types) and is not called once an encoding failed.
    pub fn record(&mut self, ch: usize, encode: impl FnOnce() -> Result<Vec<u8>, TaskError>) {
        let Some(c) = &mut self.active else { return };
        if c.error.is_some() {
            return;
        }
        match encode() {
            Ok(bytes) => c.batches[ch].push(ByteBuf::from(bytes)),
            Err(e) => c.error = Some(e),
        }
    }

    /// Starts recording channel state for unaligned checkpoint `id`, whose snapshot was just
    /// taken: every channel is recorded until its marker. A capture of an older checkpoint is
    /// abandoned (the subtask declines that checkpoint). The gate then passes what it read
    /// ahead and has not processed to [`ChannelStateCapture::unprocessed`].
    pub fn start(&mut self, id: u64) {
        self.newest = self.newest.max(id);
        let n = self.ended.len();
        let mut c = Capture { id, reached: self.ended.clone(), batches: vec![Vec::new(); n], error: None };
        if let Some((marker, ch)) = self.inband.take() {
            if marker == id {
                c.reached[ch] = true;
            }
        }
        self.active = Some(c);
    }

    /// Decides what `e`, read from channel `ch` before the capture started and not processed
    /// yet, is: a batch is in flight (record it), an end or a loss ends the channel's
    /// recording. It stays to be delivered either way.
    pub fn unprocessed(&mut self, ch: usize, e: Option<&Element>) -> Admit {
        match e {
            Some(Element::Records { .. }) => return Admit::Record,
            Some(Element::EndOfPartition) | None => {
                if let Some(c) = &mut self.active {
                    c.reached[ch] = true;
                }
            }
            _ => {}
        }
        Admit::Deliver
    }

    /// Records end of partition on channel `ch` (delivered and processed): nothing of it is
    /// in flight any more.
    pub fn on_end(&mut self, ch: usize) {
        self.ended[ch] = true;
    }

    /// Whether a capture is on.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// Whether the capture in progress has every channel's marker (or end).
    #[inline]
    pub fn is_complete(&self) -> bool {
        self.active.as_ref().is_some_and(|c| (0..c.reached.len()).all(|i| c.reached[i] || self.ended[i]))
    }

    /// The channel state of the capture in progress, if it is complete (the capture ends):
    /// the checkpoint id and, per channel that had any, its batches and the logical input
    /// `input_of[channel]` it feeds; or why it cannot be had.
    pub fn take_completed(&mut self, input_of: &[usize]) -> Option<(u64, Result<Vec<ChannelState>, TaskError>)> {
        if !self.is_complete() {
            return None;
        }
        let c = self.active.take()?;
        if let Some(e) = c.error {
            return Some((c.id, Err(e)));
        }
        let states = c
            .batches
            .into_iter()
            .enumerate()
            .filter(|(_, b)| !b.is_empty())
            .map(|(ch, batches)| ChannelState {
                channel: ch as u32,
                input: input_of.get(ch).copied().unwrap_or(0) as u32,
                batches,
            })
            .collect();
        Some((c.id, Ok(states)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use riffle_api::CheckpointBarrier;

    fn unaligned(id: u64) -> CheckpointBarrier {
        CheckpointBarrier {
            id,
            aligned: true,
            unaligned: true,
            target: None,
            inline_threshold: 0,
            incremental: false,
            base: None,
        }
    }

    /// A batch whose encoding is the byte it carries; any other batch does not encode.
    fn batch(v: u8) -> Element {
        Element::Records { count: 1, batch: Box::new(v) }
    }

    fn encode(e: Option<&Element>) -> Result<Vec<u8>, TaskError> {
        match e {
            Some(Element::Records { batch, .. }) => {
                batch.downcast_ref::<u8>().map(|v| vec![*v]).ok_or_else(|| TaskError::msg("test", "not a u8"))
            }
            other => panic!("recording {other:?}"),
        }
    }

    /// What happens to the capture, in the order the gate and its subtask do it.
    #[derive(Debug, Clone, Copy)]
    enum In {
        /// An unaligned barrier of checkpoint `.0` on a priority lane (whichever: it overtakes
        /// the data): if it is new, the subtask snapshots and starts the capture.
        Prio(u64),
        /// The in-band position marker of checkpoint `.1` read from channel `.0`: if it is
        /// delivered, the subtask snapshots and starts the capture.
        Marker(usize, u64),
        /// The in-band position marker of checkpoint `.1` read ahead from channel `.0`: if it
        /// is delivered, it waits in the read-ahead buffer and starts nothing yet.
        MarkerAhead(usize, u64),
        /// A batch read from channel `.0`, encoding to `[.1]`.
        Batch(usize, u8),
        /// A batch read from channel `.0` that cannot be encoded.
        Unencodable(usize),
        /// End of partition read from channel `.0`.
        Eop(usize),
        /// Channel `.0` closed before its end of partition.
        Lost(usize),
        /// A watermark read from channel `.0`.
        Wm(usize),
        /// The subtask processed the end of partition of channel `.0`.
        End(usize),
        /// A capture of checkpoint `.0` starts (the subtask snapshotted).
        Start(u64),
        /// A batch of channel `.0` read ahead before the start and not processed yet.
        Ahead(usize, u8),
        /// End of partition of channel `.0` read ahead before the start.
        AheadEop(usize),
    }
    use In::*;

    type Completed = (u64, Result<Vec<(u32, Vec<u8>)>, ()>);

    /// What the capture answers to the row's last input.
    #[derive(Debug, PartialEq, Eq)]
    struct Out {
        admit: Option<Admit>,
        capturing: Vec<usize>,
        completed: Option<Completed>,
    }

    fn out(admit: Option<Admit>, capturing: &[usize], completed: Option<Completed>) -> Out {
        Out { admit, capturing: capturing.to_vec(), completed }
    }

    fn ok(id: u64, channels: &[(u32, &[u8])]) -> Option<Completed> {
        Some((id, Ok(channels.iter().map(|(ch, b)| (*ch, b.to_vec())).collect())))
    }

    /// Feeds `input` as the gate would, recording what is to be recorded and starting a
    /// capture where the subtask would; completed captures are taken, as the subtask does
    /// after every element.
    fn feed(c: &mut ChannelStateCapture, input: In, channels: usize) -> Out {
        let read = |c: &mut ChannelStateCapture, ch: usize, e: Option<Element>| {
            let admit = c.admit(ch, e.as_ref());
            if admit == Admit::Record {
                c.record(ch, || encode(e.as_ref()));
            }
            if let (Admit::Deliver, Some(Element::Barrier(b))) = (admit, &e) {
                c.start(b.id);
            }
            Some(admit)
        };
        let admit = match input {
            Prio(id) => {
                let new = c.is_new(id);
                if new {
                    c.start(id);
                }
                Some(if new { Admit::Deliver } else { Admit::Consume })
            }
            Marker(ch, id) => read(c, ch, Some(Element::Barrier(unaligned(id)))),
            MarkerAhead(ch, id) => Some(c.admit(ch, Some(&Element::Barrier(unaligned(id))))),
            Batch(ch, v) => read(c, ch, Some(batch(v))),
            Unencodable(ch) => read(c, ch, Some(Element::Records { count: 1, batch: Box::new("?") })),
            Eop(ch) => read(c, ch, Some(Element::EndOfPartition)),
            Lost(ch) => read(c, ch, None),
            Wm(ch) => read(c, ch, Some(Element::Watermark(1))),
            End(ch) => {
                c.on_end(ch);
                None
            }
            Start(id) => {
                c.start(id);
                None
            }
            Ahead(ch, v) => {
                let e = batch(v);
                let admit = c.unprocessed(ch, Some(&e));
                if admit == Admit::Record {
                    c.record(ch, || encode(Some(&e)));
                }
                Some(admit)
            }
            AheadEop(ch) => Some(c.unprocessed(ch, Some(&Element::EndOfPartition))),
        };
        let capturing = (0..channels).filter(|&ch| c.capturing(ch)).collect();
        let completed = c.take_completed(&vec![0; channels]).map(|(id, state)| {
            let state = state.map_err(|_| ()).map(|s| {
                s.into_iter().map(|s| (s.channel, s.batches.iter().flat_map(|b| b.to_vec()).collect())).collect()
            });
            (id, state)
        });
        Out { admit, capturing, completed }
    }

    use Admit::{Consume, Deliver, Record};

    /// Each row: the inputs that set a two-channel capture up, one more input, and the answer
    /// to it.
    #[test]
    fn the_capture_follows_its_table() {
        #[rustfmt::skip]
        let table: Vec<(&str, &[In], In, Out)> = vec![
            ("nothing is recorded without a capture",
                &[], Batch(0, 1), out(Some(Deliver), &[], None)),
            ("a priority barrier of a new checkpoint starts it: every channel is recorded",
                &[], Prio(5), out(Some(Deliver), &[0, 1], None)),
            ("a batch of a channel whose marker has not come is recorded",
                &[Prio(5)], Batch(1, 3), out(Some(Record), &[0, 1], None)),
            ("other elements are delivered and not recorded",
                &[Prio(5)], Wm(1), out(Some(Deliver), &[0, 1], None)),
            ("the marker is consumed and ends its channel's recording",
                &[Prio(5)], Marker(0, 5), out(Some(Consume), &[1], None)),
            ("a batch after its channel's marker is not recorded",
                &[Prio(5), Marker(0, 5)], Batch(0, 4), out(Some(Deliver), &[1], None)),
            ("complete when every marker came, with what each channel had in flight",
                &[Prio(5), Batch(0, 1), Batch(0, 2), Marker(0, 5), Batch(0, 9), Batch(1, 3)], Marker(1, 5),
                out(Some(Consume), &[], ok(5, &[(0, &[1, 2]), (1, &[3])]))),
            ("a channel that ended before the start has nothing in flight",
                &[Eop(1), End(1), Prio(5)], Marker(0, 5), out(Some(Consume), &[], ok(5, &[]))),
            ("end of partition read from a recorded channel ends its recording",
                &[Prio(5), Marker(0, 5)], Eop(1), out(Some(Deliver), &[], ok(5, &[]))),
            ("a channel ending during the capture completes it",
                &[Prio(5), Marker(0, 5)], End(1), out(None, &[], ok(5, &[]))),
            ("a lost channel has nothing more in flight",
                &[Prio(5), Marker(0, 5)], Lost(1), out(Some(Deliver), &[], ok(5, &[]))),
            ("a priority barrier of the started checkpoint is stale",
                &[Prio(5)], Prio(5), out(Some(Consume), &[0, 1], None)),
            ("a priority barrier of an older checkpoint is stale",
                &[Prio(5)], Prio(4), out(Some(Consume), &[0, 1], None)),
            ("a marker of an older checkpoint is consumed and ends nothing",
                &[Prio(5)], Marker(1, 4), out(Some(Consume), &[0, 1], None)),
            ("a marker of a completed capture is stale",
                &[Prio(5), Marker(0, 5), Marker(1, 5)], Marker(0, 5), out(Some(Consume), &[], None)),
            ("a priority barrier of a completed capture is stale",
                &[Prio(5), Marker(0, 5), Marker(1, 5)], Prio(5), out(Some(Consume), &[], None)),
            ("a newer checkpoint starts after a completed capture",
                &[Prio(5), Marker(0, 5), Marker(1, 5)], Prio(6), out(Some(Deliver), &[0, 1], None)),
            ("an in-band marker before any barrier is delivered: it starts the checkpoint",
                &[], Marker(1, 3), out(Some(Deliver), &[0], None)),
            ("its channel has nothing in flight",
                &[Marker(1, 3)], Batch(1, 9), out(Some(Deliver), &[0], None)),
            ("its priority barrier, coming later, is stale",
                &[Marker(1, 3)], Prio(3), out(Some(Consume), &[0], None)),
            ("the capture it started completes with the other markers",
                &[Marker(1, 3), Batch(0, 1)], Marker(0, 3), out(Some(Consume), &[], ok(3, &[(0, &[1])]))),
            ("an in-band marker read ahead is delivered like any",
                &[], MarkerAhead(1, 3), out(Some(Deliver), &[], None)),
            ("an in-band marker of another checkpoint does not end its channel's recording",
                &[MarkerAhead(1, 3), Prio(4)], Batch(1, 2), out(Some(Record), &[0, 1], None)),
            ("a newer checkpoint abandons the older capture",
                &[Prio(5), Batch(0, 1)], Prio(6), out(Some(Deliver), &[0, 1], None)),
            ("after it, the older checkpoint's marker is stale",
                &[Prio(5), Prio(6)], Marker(0, 5), out(Some(Consume), &[0, 1], None)),
            ("the newer capture keeps nothing of the older one",
                &[Prio(5), Batch(0, 1), Prio(6), Batch(0, 2), Marker(0, 6)], Marker(1, 6),
                out(Some(Consume), &[], ok(6, &[(0, &[2])]))),
            ("batches read ahead before the start are in flight",
                &[Start(5)], Ahead(0, 1), out(Some(Record), &[0, 1], None)),
            ("an end read ahead before the start ends its channel's recording",
                &[Start(5)], AheadEop(1), out(Some(Deliver), &[0], None)),
            ("read-ahead batches come before what is read after the start",
                &[Start(5), Ahead(0, 1), Batch(0, 2), Marker(0, 5)], Marker(1, 5),
                out(Some(Consume), &[], ok(5, &[(0, &[1, 2])]))),
            ("an encoding failure declines the checkpoint",
                &[Prio(5), Unencodable(0), Batch(1, 1), Marker(0, 5)], Marker(1, 5),
                out(Some(Consume), &[], Some((5, Err(()))))),
        ];
        for (why, setup, input, expected) in table {
            let mut c = ChannelStateCapture::new(2);
            for i in setup {
                feed(&mut c, *i, 2);
            }
            assert_eq!(feed(&mut c, input, 2), expected, "{why}: after {setup:?}, {input:?}");
        }
    }

    #[test]
    fn after_an_encoding_failure_nothing_more_is_encoded() {
        let mut c = ChannelStateCapture::new(1);
        c.start(1);
        c.record(0, || Err(TaskError::msg("test", "broken")));
        c.record(0, || panic!("encoded after the failure"));
        assert!(c.is_active());
    }

    #[test]
    fn channel_state_names_the_logical_input_of_its_channel() {
        let mut c = ChannelStateCapture::new(3);
        c.start(1);
        for ch in 0..3 {
            c.record(ch, || Ok(vec![ch as u8]));
            c.admit(ch, Some(&Element::Barrier(unaligned(1))));
        }
        let (_, state) = c.take_completed(&[0, 1, 1]).expect("every marker came");
        let inputs: Vec<(u32, u32)> = state.expect("encoded").iter().map(|s| (s.channel, s.input)).collect();
        assert_eq!(inputs, vec![(0, 0), (1, 1), (2, 1)]);
        assert!(!c.is_active());
    }
}
