//! The lease that makes one server process at a time the alert evaluator
//! ([`crate::store::leases`]); each evaluation's transaction claims it again, which locks the
//! row, so a holder that stalled past its expiry cannot write.

pub use crate::store::leases::{Lease, process_holder_name};

/// The evaluator's lease.
pub const ALERT_EVALUATOR: &str = "alert_evaluator";
