//! Problem details: how an [`Error`](crate::error::Error) becomes a status, an RFC 9457 body and
//! headers ([`error_response`]), and the body's shape and content negotiation ([`problem`]).

pub mod error_response;
pub mod problem;
