//! A request body, from the wire to a checked value: the telemetry payload and the admin API's
//! bodies, in the order they are handled.
//!
//! - [`read`]: size limit, gzip, read timeout, content type; every body.
//! - [`telemetry`]: the agent's snapshot. A hand-written [`reader`] reads the text once and
//!   checks each value against the schema's compiled nodes ([`schema`]); it answers only for a
//!   document that conforms, and declines anything else ([`Declined`]). What it declines takes
//!   the `Value` path, where [`salvage`] keeps a snapshot whose only faults are inside some
//!   containers.
//! - [`json`]: `ValidJson<T>`, the admin API's small, rare bodies, by the `Value` path alone.
//! - The `Value` path's check, which names every failing field by path, and the leaf rules
//!   (lengths, patterns, timestamps, no NUL, numeric bounds) it and the reader both apply, are
//!   the contract's, so they live in [`crate::domain::schema_check`]: the CLI and the alert
//!   rules check their requests by them too.
//!
//! Why the telemetry payload has a reader of its own: docs/ARCHITECTURE.md, "Parsing the
//! telemetry body".

pub mod json;
pub mod read;
pub mod reader;
pub mod salvage;
mod schema;
pub mod telemetry;

pub use reader::Declined;
