//! Alert evaluation (docs/alerts.md#evaluation): the rules' conditions as set-based
//! queries, the transitions of alerts in one transaction per cycle, the lease that makes one
//! server process the evaluator, and the background task that runs the cycles.

pub mod conditions;
pub mod evaluation;
pub mod lease;
pub mod task;
