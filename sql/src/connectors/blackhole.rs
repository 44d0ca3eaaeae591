//! `'connector' = 'blackhole'`: a sink that drops every row (the results are still computed).

use riffle_api::DataStream;
use riffle_connectors::Rows;

use super::{SinkContext, SinkOutput, TableConnector};
use crate::error::Result;

/// Flink's blackhole sink.
pub struct Blackhole;

impl TableConnector for Blackhole {
    fn name(&self) -> &str {
        "blackhole"
    }

    fn create_sink(&self, _ctx: &SinkContext<'_>, input: DataStream<Rows>) -> Result<SinkOutput> {
        Ok(SinkOutput::Job(input.discard().name("Sink: blackhole")))
    }
}
