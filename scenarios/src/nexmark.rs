//! Nexmark queries over the benchmark's bid generator: q1 (currency conversion), q2
//! (selection), q5 (hot items: the auctions with the most bids per sliding window).

use std::path::PathBuf;
use std::time::Duration;

use riffle_api::generators::{to_euro, Bid};
use riffle_api::{
    AggregateFunction, DataStream, KeyedProcessFunction, ProcessContext, StreamEnvironment, TimeDomain, TimeWindow,
    UserError, WatermarkStrategy, WindowAssigner,
};

use crate::ScenarioError;

/// A Nexmark query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// Prices in euros.
    Q1,
    /// Bids on every 123rd auction.
    Q2,
    /// Hot items.
    Q5,
}

impl std::str::FromStr for Query {
    type Err = ScenarioError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "q1" => Ok(Query::Q1),
            "q2" => Ok(Query::Q2),
            "q5" => Ok(Query::Q5),
            other => Err(ScenarioError::Invalid(format!("unknown nexmark query '{other}' (use q1, q2 or q5)"))),
        }
    }
}

/// Counts records (an [`AggregateFunction`]).
pub struct CountBids;

impl AggregateFunction<Bid, u64, u64> for CountBids {
    fn create_accumulator(&self) -> u64 {
        0
    }
    #[inline]
    fn add(&self, _: Bid, acc: u64) -> u64 {
        acc + 1
    }
    fn get_result(&self, acc: &u64) -> u64 {
        *acc
    }
    fn merge(&self, a: u64, b: u64) -> u64 {
        a + b
    }
}

/// Bids with event time from their `date_time`.
pub fn timed_bids(env: &StreamEnvironment, events: u64) -> DataStream<Bid> {
    env.bids(events).assign_timestamps_and_watermarks(
        WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|b: &Bid, _| b.date_time),
    )
}

/// Keeps, per window end, the auctions with the highest count; emits them when event time
/// passes the window's end.
#[derive(Clone, Default)]
pub struct HotItems;

impl KeyedProcessFunction<i64, (i64, i64, u64), (i64, i64, u64)> for HotItems {
    fn process_element(
        &mut self,
        v: (i64, i64, u64),
        ctx: &mut ProcessContext<'_, i64, (i64, i64, u64)>,
    ) -> Result<(), UserError> {
        let max = ctx.state().value_state::<u64>("max")?;
        let best = ctx.state().list_state::<i64>("best")?;
        let current = max.get(ctx.state())?.copied();
        match current {
            None => {
                ctx.register_event_time_timer(v.1 - 1);
                max.set(ctx.state(), v.2)?;
                best.update(ctx.state(), vec![v.0])?;
            }
            Some(m) if v.2 > m => {
                max.set(ctx.state(), v.2)?;
                best.update(ctx.state(), vec![v.0])?;
            }
            Some(m) if v.2 == m => best.add(ctx.state(), v.0)?,
            Some(_) => {}
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        _: i64,
        _: TimeDomain,
        ctx: &mut ProcessContext<'_, i64, (i64, i64, u64)>,
    ) -> Result<(), UserError> {
        let max = ctx.state().value_state::<u64>("max")?;
        let best = ctx.state().list_state::<i64>("best")?;
        let m = max.clear(ctx.state())?.unwrap_or(0);
        let mut auctions = best.clear(ctx.state())?;
        auctions.sort_unstable();
        let end = *ctx.key();
        for a in auctions {
            ctx.collect((end, a, m));
        }
        Ok(())
    }
}

/// Defines query `q` over `events` bids; its results are lines written to `output` (one
/// file at parallelism 1, `part-<i>` files otherwise) or printed.
pub fn define(env: &StreamEnvironment, q: Query, events: u64, output: Option<PathBuf>) {
    let lines: DataStream<String> = match q {
        Query::Q1 => {
            env.bids(events).map(|b: Bid| format!("{},{},{},{}", b.auction, b.bidder, to_euro(b.price), b.date_time))
        }
        Query::Q2 => {
            env.bids(events).filter(|b: &Bid| b.auction % 123 == 0).map(|b: Bid| format!("{},{}", b.auction, b.price))
        }
        Query::Q5 => hot_items(env, events).map(|(end, auction, count)| format!("{end},{auction},{count}")),
    };
    match output {
        Some(p) => {
            lines.write_as_text(p, String::clone);
        }
        None => {
            lines.print_text();
        }
    }
}

/// Nexmark q5 as `(window_end, auction, count)` rows.
pub fn hot_items(env: &StreamEnvironment, events: u64) -> DataStream<(i64, i64, u64)> {
    timed_bids(env, events)
        .key_by(|b: &Bid| b.auction)
        .window(WindowAssigner::sliding_event_time(Duration::from_secs(10), Duration::from_secs(2)))
        .aggregate_with(CountBids, |a: &i64, w: &TimeWindow, n: u64| (*a, w.end, n))
        .name("Bids per Auction")
        .key_by(|r: &(i64, i64, u64)| r.1)
        .process(HotItems)
        .name("Hot Items")
}
