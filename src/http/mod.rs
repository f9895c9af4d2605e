//! Connection plumbing that knows nothing of resources: the client's address behind trusted
//! proxies, a deadline on request heads, a cap on each read from a connection, a deadline on
//! each write to one, the per-request log line and request id, and the Prometheus metrics every layer records into.

pub mod client_address;
pub mod header_deadline;
pub mod metrics;
pub mod read_cap;
pub mod request_log;
pub mod wrap_io;
pub mod write_deadline;
