//! What a subtask's chain contributes to a checkpoint, and what it gets back on restore.
//!
//! Each stateful operator writes one blob under its node index; keyed operators encode their
//! state entry by entry with key groups (see `riffle_state::StateSnapshot`), so a restore can
//! take just the key groups the new subtask owns, from one former subtask or several.

use std::collections::HashMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use riffle_state::{assign_to_key_group, key_hash, KeyGroupRange, StateKey};
use serde_bytes::ByteBuf;

use crate::error::TaskError;
use crate::source::SplitBytes;

/// A source reader's state at a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSnapshot {
    /// Splits assigned but not finished, with their progress.
    pub unfinished: Vec<SplitBytes>,
    /// The ids of `unfinished`, so a restore can tell the enumerator what readers hold.
    pub unfinished_ids: Vec<String>,
    /// Ids of splits read to the end.
    pub finished: Vec<String>,
}

/// Everything one subtask contributes to a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskSnapshot {
    /// The source reader's state (source subtasks only).
    pub source: Option<SourceSnapshot>,
    /// Operator state by node index.
    pub operators: Vec<(usize, ByteBuf)>,
    /// In-flight records of an unaligned checkpoint: what had reached this subtask's input
    /// channels, before the producers' snapshots, but was not processed yet at its own.
    /// Replayed before new input on restore (at the same parallelism only).
    #[serde(default)]
    pub channels: Vec<ChannelState>,
}

/// The in-flight records of one input channel, as batches encoded by the vertex head.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelState {
    /// The physical channel (index among the subtask's input channels).
    pub channel: u32,
    /// The logical input it feeds.
    pub input: u32,
    /// Encoded batches, in arrival order.
    pub batches: Vec<ByteBuf>,
}

impl SubtaskSnapshot {
    /// Encodes for an acknowledgement message or a state file.
    pub fn encode(&self) -> Result<Vec<u8>, TaskError> {
        // Sized up front: large state would otherwise be copied and page-faulted at every
        // doubling of the buffer.
        let blobs: usize = self.operators.iter().map(|(_, b)| b.len() + 16).sum::<usize>()
            + self.channels.iter().flat_map(|c| &c.batches).map(|b| b.len() + 8).sum::<usize>();
        let mut out = Vec::with_capacity(blobs + 256);
        rmp_serde::encode::write(&mut out, self)
            .map_err(|e| TaskError::msg("checkpoint", format!("cannot encode a snapshot: {e}")))?;
        Ok(out)
    }

    /// Decodes what [`SubtaskSnapshot::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, TaskError> {
        rmp_serde::from_slice(bytes).map_err(|e| TaskError::msg("checkpoint", format!("corrupt subtask snapshot: {e}")))
    }
}

/// Encodes an operator's state blob (for deferred encoders).
pub fn encode_state<T: Serialize>(state: &T, name: &str) -> Result<Vec<u8>, TaskError> {
    encode_state_sized(state, name, 0)
}

/// [`encode_state`] into a buffer of `size_hint` bytes (the size of the key-grouped buffers
/// it holds, say), so that large state is not copied at every doubling of the buffer.
pub fn encode_state_sized<T: Serialize>(state: &T, name: &str, size_hint: usize) -> Result<Vec<u8>, TaskError> {
    let mut out = Vec::with_capacity(size_hint + 64);
    rmp_serde::encode::write(&mut out, state)
        .map_err(|e| TaskError::msg(name, format!("cannot snapshot state: {e}")))?;
    Ok(out)
}

/// Encodes one operator's frozen state: runs off the subtask's thread.
pub type DeferredEncode = Box<dyn FnOnce() -> Result<Vec<u8>, TaskError> + Send>;

/// A piece of an operator's encoded state; an operator's state is the concatenation of its
/// pieces. A piece with an `id` may be handed in again, unchanged, by later snapshots of the
/// same operator instance (the same id always stands for the same bytes there): an
/// incremental checkpoint writes it once and refers to it afterwards.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Stable identity within the operator instance (`None`: a fresh piece every time).
    pub id: Option<u64>,
    /// The encoded bytes.
    pub bytes: Arc<Vec<u8>>,
}

impl Segment {
    /// A piece with no identity (written anew by every checkpoint).
    pub fn fresh(bytes: Vec<u8>) -> Self {
        Self { id: None, bytes: Arc::new(bytes) }
    }
}

/// Encodes one operator's frozen state as pieces: runs off the subtask's thread.
pub type DeferredSegments = Box<dyn FnOnce() -> Result<Vec<Segment>, TaskError> + Send>;

/// The MessagePack header of an array of `n` elements (for operators that encode their
/// state as pieces: the header, then each element's own encoding).
pub fn msgpack_array_header(n: usize) -> Vec<u8> {
    if n < 16 {
        vec![0x90 | n as u8]
    } else if let Ok(n) = u16::try_from(n) {
        let mut v = vec![0xdc];
        v.extend_from_slice(&n.to_be_bytes());
        v
    } else {
        let mut v = vec![0xdd];
        v.extend_from_slice(&(n as u32).to_be_bytes());
        v
    }
}

/// One operator's part of a snapshot: encoded already, or a frozen copy still to encode.
enum Part {
    Ready(Vec<u8>),
    Deferred(DeferredEncode),
    Segments(DeferredSegments),
}

/// Collects operator snapshots while a snapshot traverses the chain.
///
/// Operators with large state hand in a *frozen copy* and the function that encodes it
/// ([`OperatorSnapshots::put_deferred`]): the synchronous part of a checkpoint is then a
/// copy, and encoding and writing happen on another thread while records keep flowing.
pub struct OperatorSnapshots {
    /// Number of key groups.
    pub max_parallelism: u32,
    /// The checkpoint this snapshot belongs to: two-phase-commit sinks file the transaction
    /// they pre-commit here under it, to commit it when this checkpoint (or a later one)
    /// completes.
    pub checkpoint_id: u64,
    parts: Vec<(usize, Part)>,
}

impl OperatorSnapshots {
    /// An empty collection for checkpoint `checkpoint_id`.
    pub fn new(max_parallelism: u32, checkpoint_id: u64) -> Self {
        Self { max_parallelism, checkpoint_id, parts: Vec::new() }
    }

    /// Adds operator `op`'s state, encoded now (small state).
    pub fn put<T: Serialize>(&mut self, op: usize, name: &str, state: &T) -> Result<(), TaskError> {
        let bytes =
            rmp_serde::to_vec(state).map_err(|e| TaskError::msg(name, format!("cannot snapshot state: {e}")))?;
        self.parts.push((op, Part::Ready(bytes)));
        Ok(())
    }

    /// Adds operator `op`'s state as a frozen copy and the function that encodes it later,
    /// off the subtask's thread.
    pub fn put_deferred(&mut self, op: usize, encode: DeferredEncode) {
        self.parts.push((op, Part::Deferred(encode)));
    }

    /// Adds operator `op`'s state as a frozen copy and the function that encodes it later as
    /// pieces (see [`Segment`]), off the subtask's thread.
    pub fn put_deferred_segments(&mut self, op: usize, encode: DeferredSegments) {
        self.parts.push((op, Part::Segments(encode)));
    }

    /// Number of operator states collected.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Whether no operator contributed state.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Ends the synchronous part: what is left to encode, with the source reader's state.
    pub fn finish(self, source: Option<SourceSnapshot>) -> PendingSnapshot {
        PendingSnapshot { source, parts: self.parts, channels: Vec::new() }
    }
}

/// A subtask's snapshot after its synchronous part: movable to another thread, where
/// [`PendingSnapshot::complete`] encodes it.
pub struct PendingSnapshot {
    source: Option<SourceSnapshot>,
    parts: Vec<(usize, Part)>,
    channels: Vec<ChannelState>,
}

impl PendingSnapshot {
    /// Adds the channel state of an unaligned checkpoint (known only once the position
    /// markers arrived on every input channel, after the synchronous part).
    pub fn set_channels(&mut self, channels: Vec<ChannelState>) {
        self.channels = channels;
    }

    /// Bytes of in-flight data it persists (unaligned checkpoints' channel state).
    pub fn channel_bytes(&self) -> u64 {
        self.channels.iter().flat_map(|c| c.batches.iter()).map(|b| b.len() as u64).sum()
    }

    /// Runs the deferred encoders and assembles the subtask's snapshot.
    pub fn complete(self) -> Result<SubtaskSnapshot, TaskError> {
        Ok(self.complete_segmented()?.into_full())
    }

    /// Runs the deferred encoders; operator states stay in pieces (for incremental
    /// checkpoints, which write only pieces not written before).
    pub fn complete_segmented(self) -> Result<SegmentedSnapshot, TaskError> {
        let mut operators = Vec::with_capacity(self.parts.len());
        for (op, part) in self.parts {
            let segments = match part {
                Part::Ready(b) => vec![Segment::fresh(b)],
                Part::Deferred(f) => vec![Segment::fresh(f()?)],
                Part::Segments(f) => f()?,
            };
            operators.push((op, segments));
        }
        Ok(SegmentedSnapshot { source: self.source, operators, channels: self.channels })
    }
}

/// A subtask's snapshot with each operator's state as pieces (see [`Segment`]).
#[derive(Debug, Clone, Default)]
pub struct SegmentedSnapshot {
    /// The source reader's state (source subtasks only).
    pub source: Option<SourceSnapshot>,
    /// Operator state by node index, in pieces.
    pub operators: Vec<(usize, Vec<Segment>)>,
    /// In-flight records of an unaligned checkpoint.
    pub channels: Vec<ChannelState>,
}

impl SegmentedSnapshot {
    /// The snapshot with each operator's pieces concatenated.
    pub fn into_full(self) -> SubtaskSnapshot {
        let operators = self
            .operators
            .into_iter()
            .map(|(op, segments)| {
                let bytes = if segments.len() == 1 {
                    let s = segments.into_iter().next().map(|s| s.bytes).unwrap_or_default();
                    Arc::try_unwrap(s).unwrap_or_else(|shared| shared.as_ref().clone())
                } else {
                    let mut out = Vec::with_capacity(segments.iter().map(|s| s.bytes.len()).sum());
                    for s in &segments {
                        out.extend_from_slice(&s.bytes);
                    }
                    out
                };
                (op, ByteBuf::from(bytes))
            })
            .collect();
        SubtaskSnapshot { source: self.source, operators, channels: self.channels }
    }
}

/// Keyed state encoded per key group: for each key group holding entries, their number and
/// one buffer of consecutive MessagePack `(key, value)` pairs. One allocation per key group
/// instead of one per entry keeps large snapshots cheap to write and to read, and a restore
/// skips the key groups it does not own without decoding them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyGroupedState {
    groups: Vec<(u32, u32, ByteBuf)>,
}

impl KeyGroupedState {
    /// Encodes `(key, value)` items by key group of `max_parallelism`.
    pub fn encode<'a, K: StateKey, V: Serialize + 'a>(
        items: impl Iterator<Item = (&'a K, V)>,
        max_parallelism: u32,
        name: &str,
    ) -> Result<Self, TaskError> {
        let mut groups: Vec<(u32, Vec<u8>)> = vec![(0, Vec::new()); max_parallelism.max(1) as usize];
        for (k, v) in items {
            let kg = assign_to_key_group(key_hash(k), max_parallelism) as usize;
            let (n, buf) = &mut groups[kg];
            *n += 1;
            rmp_serde::encode::write(buf, &(k, v))
                .map_err(|e| TaskError::msg(name, format!("cannot snapshot state: {e}")))?;
        }
        let groups = groups
            .into_iter()
            .enumerate()
            .filter(|(_, (n, _))| *n > 0)
            .map(|(kg, (n, buf))| (kg as u32, n, ByteBuf::from(buf)))
            .collect();
        Ok(Self { groups })
    }

    /// Decodes the entries of the key groups in `range`, calling `f` for each.
    pub fn decode<T: DeserializeOwned, F: FnMut(T)>(
        &self,
        range: KeyGroupRange,
        name: &str,
        mut f: F,
    ) -> Result<(), TaskError> {
        for (kg, n, buf) in self.groups.iter().filter(|(kg, _, _)| range.contains(*kg)) {
            let mut de = rmp_serde::Deserializer::from_read_ref(buf.as_slice());
            for _ in 0..*n {
                let item = T::deserialize(&mut de)
                    .map_err(|e| TaskError::msg(name, format!("cannot restore state of key group {kg}: {e}")))?;
                f(item);
            }
        }
        Ok(())
    }

    /// Encoded bytes, all key groups together (with per-group framing).
    pub fn byte_len(&self) -> usize {
        self.groups.iter().map(|(_, _, b)| b.len() + 16).sum()
    }

    /// Number of entries, all key groups together.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|(_, n, _)| *n as usize).sum()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// Writes keyed entries by key group straight into one MessagePack buffer: the bytes
/// `rmp_serde` writes for the [`KeyGroupedState`] of the same entries, without its per-group
/// buffers and the copy into the final one. Its scratch buffers are kept between calls, so an
/// operator encoding many small states (the window operator: one per window) allocates once
/// per state, for the result.
#[derive(Debug, Default)]
pub struct KeyGroupedWriter {
    /// The entries' encodings, in arrival order.
    scratch: Vec<u8>,
    /// Per entry: its key group (high half) and the start of its encoding in `scratch` (low
    /// half), and the end of its encoding. Sorted, they are in key group order and, within a
    /// group, in arrival order.
    spans: Vec<(u64, u32)>,
    /// `spans` being sorted by key group (counting sort).
    sorted: Vec<(u64, u32)>,
    /// Per key group: where its entries start in `sorted`.
    starts: Vec<u32>,
}

impl KeyGroupedWriter {
    /// Appends the encoding of the [`KeyGroupedState`] of `items` (key groups of
    /// `max_parallelism`) to `out`.
    pub fn write<'a, K: StateKey, V: Serialize + 'a>(
        &mut self,
        items: impl Iterator<Item = (&'a K, V)>,
        max_parallelism: u32,
        name: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), TaskError> {
        self.scratch.clear();
        self.spans.clear();
        let too_large = || TaskError::msg(name, "cannot snapshot state: more than 4 GiB in one keyed state");
        for (k, v) in items {
            let kg = assign_to_key_group(key_hash(k), max_parallelism);
            let start = u32::try_from(self.scratch.len()).map_err(|_| too_large())?;
            rmp_serde::encode::write(&mut self.scratch, &(k, v))
                .map_err(|e| TaskError::msg(name, format!("cannot snapshot state: {e}")))?;
            let end = u32::try_from(self.scratch.len()).map_err(|_| too_large())?;
            self.spans.push(((u64::from(kg) << 32) | u64::from(start), end));
        }
        self.sort_by_key_group(max_parallelism);
        let same_group = |a: &(u64, u32), b: &(u64, u32)| a.0 >> 32 == b.0 >> 32;
        let groups = self.spans.chunk_by(same_group).count();
        out.reserve(self.scratch.len() + 16 * groups + 8);
        out.extend_from_slice(&msgpack_array_header(1));
        out.extend_from_slice(&msgpack_array_header(groups));
        let span = |(at, end): &(u64, u32)| (*at as u32) as usize..*end as usize;
        for group in self.spans.chunk_by(same_group) {
            let len: usize = group.iter().map(|s| span(s).len()).sum();
            out.extend_from_slice(&msgpack_array_header(3));
            msgpack_uint(out, group[0].0 >> 32);
            msgpack_uint(out, group.len() as u64);
            msgpack_bin_header(out, len);
            for s in group {
                out.extend_from_slice(&self.scratch[span(s)]);
            }
        }
        Ok(())
    }

    /// Sorts `spans` by key group, a group's entries in arrival order (as in
    /// `KeyGroupedState::encode`): a counting sort when there are not many more key groups
    /// than entries, a comparison sort otherwise (their keys are unique, so it is stable).
    fn sort_by_key_group(&mut self, max_parallelism: u32) {
        let groups = max_parallelism.max(1) as usize;
        if groups > 4 * self.spans.len() + 64 {
            self.spans.sort_unstable_by_key(|(at, _)| *at);
            return;
        }
        self.starts.clear();
        self.starts.resize(groups + 1, 0);
        for (at, _) in &self.spans {
            self.starts[(at >> 32) as usize + 1] += 1;
        }
        for g in 1..=groups {
            self.starts[g] += self.starts[g - 1];
        }
        self.sorted.clear();
        self.sorted.resize(self.spans.len(), (0, 0));
        for s in &self.spans {
            let next = &mut self.starts[(s.0 >> 32) as usize];
            self.sorted[*next as usize] = *s;
            *next += 1;
        }
        std::mem::swap(&mut self.spans, &mut self.sorted);
    }
}

/// Appends `n` as the shortest MessagePack unsigned integer (as `rmp_serde` writes it).
fn msgpack_uint(out: &mut Vec<u8>, n: u64) {
    if n < 128 {
        out.push(n as u8);
    } else if let Ok(n) = u8::try_from(n) {
        out.extend_from_slice(&[0xcc, n]);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(0xcd);
        out.extend_from_slice(&n.to_be_bytes());
    } else if let Ok(n) = u32::try_from(n) {
        out.push(0xce);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Appends the MessagePack header of a binary of `len` bytes.
fn msgpack_bin_header(out: &mut Vec<u8>, len: usize) {
    if let Ok(n) = u8::try_from(len) {
        out.extend_from_slice(&[0xc4, n]);
    } else if let Ok(n) = u16::try_from(len) {
        out.push(0xc5);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Operator state to restore, possibly from several former subtasks (rescaling).
pub struct OperatorRestore {
    /// The key groups the restoring subtask owns.
    pub range: KeyGroupRange,
    /// Number of key groups.
    pub max_parallelism: u32,
    /// The job runs at another parallelism than the snapshots were taken at: every subtask
    /// got every former subtask's state (else exactly its own former self's).
    pub rescaled: bool,
    by_op: HashMap<usize, Vec<ByteBuf>>,
}

impl OperatorRestore {
    /// Restore data from former subtasks' snapshots.
    pub fn new(range: KeyGroupRange, max_parallelism: u32, snapshots: Vec<SubtaskSnapshot>) -> Self {
        let mut by_op: HashMap<usize, Vec<ByteBuf>> = HashMap::new();
        for s in snapshots {
            for (op, bytes) in s.operators {
                by_op.entry(op).or_default().push(bytes);
            }
        }
        Self { range, max_parallelism, rescaled: false, by_op }
    }

    /// Marks the restore as a rescaling one (see [`Self::rescaled`]).
    pub fn with_rescaled(mut self, rescaled: bool) -> Self {
        self.rescaled = rescaled;
        self
    }

    /// Operator `op`'s states, decoded (one per former subtask that had some).
    pub fn get<T: DeserializeOwned>(&self, op: usize, name: &str) -> Result<Vec<T>, TaskError> {
        let Some(blobs) = self.by_op.get(&op) else { return Ok(Vec::new()) };
        blobs
            .iter()
            .map(|b| rmp_serde::from_slice(b).map_err(|e| TaskError::msg(name, format!("cannot restore state: {e}"))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_grouped_state_round_trips_and_filters_by_range() {
        let items: Vec<(u64, String)> = (0..1000u64).map(|k| (k, format!("v{k}"))).collect();
        let enc = KeyGroupedState::encode(items.iter().map(|(k, v)| (k, v)), 128, "t").unwrap();
        assert_eq!(enc.len(), 1000);
        let bytes = rmp_serde::to_vec(&enc).unwrap();
        let dec: KeyGroupedState = rmp_serde::from_slice(&bytes).unwrap();
        let mut all = Vec::new();
        dec.decode::<(u64, String), _>(KeyGroupRange { start: 0, end: 127 }, "t", |e| all.push(e)).unwrap();
        all.sort();
        assert_eq!(all, items);
        let half = KeyGroupRange { start: 0, end: 63 };
        let mut some = Vec::new();
        dec.decode::<(u64, String), _>(half, "t", |e| some.push(e)).unwrap();
        let expected: Vec<_> =
            items.iter().filter(|(k, _)| half.contains(assign_to_key_group(key_hash(k), 128))).cloned().collect();
        some.sort();
        assert_eq!(some, expected);
        assert!(!some.is_empty() && some.len() < 1000);
    }

    #[test]
    fn key_grouped_writer_writes_what_rmp_writes_for_key_grouped_state() {
        let mut w = KeyGroupedWriter::default();
        // Empty; small values; a group over 255 and one over 65,535 bytes; key groups over
        // 127 and 255 (wider integers); counts over 127; many more key groups than entries
        // (sorted by comparison, not by counting); the writer reused each time.
        let cases: Vec<(Vec<(u64, String)>, u32)> = vec![
            (Vec::new(), 128),
            ((0..10u64).map(|k| (k, format!("v{k}"))).collect(), 128),
            ((0..3000u64).map(|k| (k, "x".repeat((k % 7) as usize))).collect(), 128),
            ((0..40u64).map(|k| (k % 3, "y".repeat(3000))).collect(), 4),
            ((0..5000u64).map(|k| (k, format!("{k}"))).collect(), 32_768),
            ((0..30u64).map(|k| (k % 7, format!("{k}"))).collect(), 32_768),
        ];
        for (items, mp) in cases {
            let want = rmp_serde::to_vec(&KeyGroupedState::encode(items.iter().map(|(k, v)| (k, v)), mp, "t").unwrap())
                .unwrap();
            let mut got = vec![0x92];
            w.write(items.iter().map(|(k, v)| (k, v)), mp, "t", &mut got).unwrap();
            assert_eq!(got[0], 0x92, "appends to what is there");
            assert_eq!(&got[1..], &want[..], "{} items, max parallelism {mp}", items.len());
        }
        for n in [0u64, 127, 128, 255, 256, 65_535, 65_536, u64::from(u32::MAX), u64::from(u32::MAX) + 1] {
            let mut got = Vec::new();
            msgpack_uint(&mut got, n);
            assert_eq!(got, rmp_serde::to_vec(&n).unwrap(), "n = {n}");
        }
    }

    #[test]
    fn msgpack_array_headers_match_rmp() {
        for n in [0usize, 1, 15, 16, 65_535, 65_536] {
            let v = vec![0u8; n];
            let enc = rmp_serde::to_vec(&v).unwrap();
            assert_eq!(msgpack_array_header(n), enc[..enc.len() - n], "n = {n}");
        }
    }

    #[test]
    fn segments_concatenate_into_the_operator_state() {
        let mut ops = OperatorSnapshots::new(128, 1);
        ops.put_deferred_segments(
            3,
            Box::new(|| {
                let mut head = msgpack_array_header(2);
                head.extend(rmp_serde::to_vec(&7u32).unwrap());
                Ok(vec![
                    Segment::fresh(head),
                    Segment { id: Some(1), bytes: Arc::new(rmp_serde::to_vec(&9u32).unwrap()) },
                ])
            }),
        );
        let seg = ops.finish(None).complete_segmented().unwrap();
        assert_eq!(seg.operators[0].1.len(), 2);
        let r = OperatorRestore::new(KeyGroupRange { start: 0, end: 127 }, 128, vec![seg.into_full()]);
        assert_eq!(r.get::<(u32, u32)>(3, "s").unwrap(), vec![(7, 9)]);
    }

    #[test]
    fn deferred_parts_are_encoded_on_completion() {
        let mut ops = OperatorSnapshots::new(128, 7);
        ops.put(0, "a", &1u32).unwrap();
        let frozen = vec![1u8, 2, 3];
        ops.put_deferred(
            2,
            Box::new(move || rmp_serde::to_vec(&frozen).map_err(|e| TaskError::msg("b", e.to_string()))),
        );
        let snap = ops.finish(None).complete().unwrap();
        let back = SubtaskSnapshot::decode(&snap.encode().unwrap()).unwrap();
        let r = OperatorRestore::new(KeyGroupRange { start: 0, end: 127 }, 128, vec![back]);
        assert_eq!(r.get::<u32>(0, "a").unwrap(), vec![1]);
        assert_eq!(r.get::<Vec<u8>>(2, "b").unwrap(), vec![vec![1, 2, 3]]);
    }
}
