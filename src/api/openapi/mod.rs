//! The published OpenAPI document: what poem-openapi generates ([`document`]), rewritten for
//! client generators ([`rewrite`]), and each operation's documented problems, one list that
//! both writes the document and bounds what the operation may answer ([`operation_errors`]).

pub mod document;
pub mod operation_errors;
mod rewrite;
