//! Window TVFs as arithmetic: which slice a row falls in, which windows a slice belongs to.
//!
//! Tumbling, hopping and cumulating windows are computed Flink's way, by *slicing*: time is cut
//! into epoch-aligned slices (tumble: the window; hop: gcd(slide, size); cumulate: the step),
//! rows are accumulated per (key, slice), and a window is the merge of its slices. A row then
//! costs one accumulator update however many windows it belongs to. Sessions are not sliced
//! (see `session`).

use super::error::{ExecError, Result};
use super::time::floor_to;

/// A window TVF with its sizes in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// `TUMBLE(TABLE t, DESCRIPTOR(ts), size)`.
    Tumble {
        /// Window size.
        size: i64,
    },
    /// `HOP(TABLE t, DESCRIPTOR(ts), slide, size)`.
    Hop {
        /// Distance between window starts.
        slide: i64,
        /// Window size.
        size: i64,
    },
    /// `CUMULATE(TABLE t, DESCRIPTOR(ts), step, max_size)`: windows of one start growing by
    /// `step` up to `max_size`.
    Cumulate {
        /// Growth step.
        step: i64,
        /// The largest window.
        max_size: i64,
    },
    /// `SESSION(TABLE t PARTITION BY keys, DESCRIPTOR(ts), gap)`.
    Session {
        /// Inactivity gap closing a session.
        gap: i64,
    },
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl WindowKind {
    /// Refuses sizes Flink refuses: non-positive sizes, a cumulate max size that is not a
    /// multiple of its step.
    pub fn validate(&self) -> Result<()> {
        let ok = match *self {
            WindowKind::Tumble { size } => size > 0,
            WindowKind::Hop { slide, size } => slide > 0 && size > 0,
            WindowKind::Cumulate { step, max_size } => step > 0 && max_size > 0 && max_size % step == 0,
            WindowKind::Session { gap } => gap > 0,
        };
        if ok {
            Ok(())
        } else {
            Err(ExecError::Spec(format!("invalid window {self:?}")))
        }
    }

    /// Whether windows are computed from slices (all but sessions).
    pub fn is_sliced(&self) -> bool {
        !matches!(self, WindowKind::Session { .. })
    }

    /// The slice length.
    pub fn slice_size(&self) -> i64 {
        match *self {
            WindowKind::Tumble { size } => size,
            WindowKind::Hop { slide, size } => gcd(slide, size),
            WindowKind::Cumulate { step, .. } => step,
            WindowKind::Session { gap } => gap,
        }
    }

    /// The end (exclusive) of the slice holding time `ts`.
    pub fn slice_end(&self, ts: i64) -> i64 {
        let s = self.slice_size();
        floor_to(ts, s) + s
    }

    /// The ends of the windows the slice ending at `slice_end` belongs to, ascending.
    pub fn window_ends_of_slice(&self, slice_end: i64) -> Vec<i64> {
        match *self {
            WindowKind::Tumble { .. } | WindowKind::Session { .. } => vec![slice_end],
            WindowKind::Hop { slide, size } => {
                // Windows [we - size, we) with we a multiple of slide, containing the slice
                // [slice_end - s, slice_end): slice_end <= we <= slice_end - s + size.
                let s = self.slice_size();
                let first = floor_to(slice_end - 1, slide) + slide;
                let last = slice_end - s + size;
                (0..).map(|i| first + i * slide).take_while(|we| *we <= last).collect()
            }
            WindowKind::Cumulate { step, max_size } => {
                let start = floor_to(slice_end - 1, max_size);
                (0..).map(|i| slice_end + i * step).take_while(|we| *we <= start + max_size).collect()
            }
        }
    }

    /// The end of the last window the slice ending at `slice_end` belongs to: the slice can
    /// be dropped once that window fired.
    pub fn last_window_end(&self, slice_end: i64) -> i64 {
        self.window_ends_of_slice(slice_end).last().copied().unwrap_or(slice_end)
    }

    /// The start of the window ending at `window_end`.
    pub fn window_start(&self, window_end: i64) -> i64 {
        match *self {
            WindowKind::Tumble { size } | WindowKind::Hop { size, .. } => window_end - size,
            WindowKind::Cumulate { max_size, .. } => floor_to(window_end - 1, max_size),
            WindowKind::Session { gap } => window_end - gap,
        }
    }

    /// The ends of the slices the window ending at `window_end` merges, ascending.
    pub fn slices_of_window(&self, window_end: i64) -> Vec<i64> {
        let s = self.slice_size();
        let start = self.window_start(window_end);
        (1..).map(|i| start + i * s).take_while(|e| *e <= window_end).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_windows_are_their_own_slices_aligned_to_the_epoch() {
        let w = WindowKind::Tumble { size: 10 };
        assert_eq!((w.slice_end(0), w.slice_end(9), w.slice_end(10), w.slice_end(-1)), (10, 10, 20, 0));
        assert_eq!(w.window_ends_of_slice(20), vec![20]);
        assert_eq!(w.slices_of_window(20), vec![20]);
        assert_eq!(w.window_start(20), 10);
    }

    #[test]
    fn a_hop_slice_belongs_to_size_over_slide_windows() {
        let w = WindowKind::Hop { slide: 2, size: 10 };
        assert_eq!(w.slice_size(), 2);
        assert_eq!(w.slice_end(5), 6);
        assert_eq!(w.window_ends_of_slice(6), vec![6, 8, 10, 12, 14]);
        assert_eq!(w.slices_of_window(14), vec![6, 8, 10, 12, 14]);
        assert_eq!(w.last_window_end(6), 14);
        // A size that is not a multiple of the slide: slices of gcd(4, 6) = 2.
        let w = WindowKind::Hop { slide: 4, size: 6 };
        assert_eq!(w.slice_size(), 2);
        assert_eq!(w.window_ends_of_slice(2), vec![4]);
        assert_eq!(w.window_ends_of_slice(4), vec![4, 8]);
        assert_eq!(w.window_ends_of_slice(6), vec![8]);
        assert_eq!(w.slices_of_window(8), vec![4, 6, 8]);
    }

    #[test]
    fn a_cumulate_slice_belongs_to_every_window_of_its_start_that_covers_it() {
        let w = WindowKind::Cumulate { step: 2, max_size: 10 };
        assert_eq!(w.window_ends_of_slice(12), vec![12, 14, 16, 18, 20]);
        assert_eq!(w.window_ends_of_slice(20), vec![20]);
        assert_eq!(w.slices_of_window(16), vec![12, 14, 16]);
        assert_eq!(w.window_start(16), 10);
        assert!(WindowKind::Cumulate { step: 3, max_size: 10 }.validate().is_err());
        assert!(WindowKind::Tumble { size: 0 }.validate().is_err());
    }
}
