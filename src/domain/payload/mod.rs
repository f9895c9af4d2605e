//! A request body, from JSON text to a checked value.

pub mod check;
pub mod reader;
pub mod salvage;
mod schema;
