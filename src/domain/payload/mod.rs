//! A request body, from JSON text to a checked value: the telemetry payload and the admin API's
//! bodies.
//!
//! Two paths, one answer. The telemetry payload has a hand-written [`reader`] that reads the
//! text once and checks each value against the schema's compiled bounds ([`schema`]); it
//! answers only for a document that conforms, and declines anything else ([`Declined`]). What
//! it declines, and every other body, takes the `Value` path: [`check`] names every failing
//! field by path, then the `Value` is parsed into the type. [`salvage`] keeps a snapshot whose
//! only faults are inside some containers. Why two paths, and what each costs: BENCHMARKS.md,
//! "Body parse paths (issue 20)".

pub mod check;
pub mod reader;
pub mod salvage;
mod schema;
#[cfg(feature = "simd-parse")]
pub mod simd;

#[cfg(test)]
pub(crate) mod bodies;

use nexus_contract::TelemetryPayload;

/// A body type, and the reader that parses and checks it in one pass when it has one.
///
/// Without one (the default) its bodies take the `Value` path only: the admin API's bodies are
/// small and rare, and a reader is a second parser to keep in step with the first.
pub trait FastBody: Sized {
    const READER: Option<BodyReader<Self>> = None;
}

/// Reads a whole document into a `T` when it conforms to the schema, or says why not.
pub type BodyReader<T> = fn(&str) -> Result<T, Declined>;

impl FastBody for TelemetryPayload {
    #[cfg(not(feature = "simd-parse"))]
    const READER: Option<BodyReader<Self>> = Some(reader::read);
    // The parser decision's prototype B (BENCHMARKS.md, "Parser decision").
    #[cfg(feature = "simd-parse")]
    const READER: Option<BodyReader<Self>> = Some(simd::read);
}

/// Why a reader left a document to the `Value` path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declined {
    /// Not JSON, or it breaks the contract: the `Value` path says how.
    Invalid,
    /// Perhaps conforming, but written in a form the reader leaves to the `Value` path (see
    /// [`reader`]).
    Form,
    /// The contract has a shape the reader does not know (a field added to it), so it reads
    /// nothing until it learns it.
    Schema,
}

impl Declined {
    /// The reason as a metric label.
    pub fn label(self) -> &'static str {
        match self {
            Declined::Invalid => "invalid",
            Declined::Form => "form",
            Declined::Schema => "schema",
        }
    }
}
