//! The errors each operation answers with: documented per operation in the OpenAPI document,
//! and produced by one conversion from the crate's [`Error`], so handlers return
//! `Result<Success, OperationError<Op>>` and use `?`.
//!
//! An operation's problems are data ([`DocumentedProblem`]s, declared with [`documented!`]):
//! the same list writes the document and bounds what the operation may answer; an error whose
//! status the list lacks is answered as a 500 ([`answer`]).

use std::marker::PhantomData;

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaHeader, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, ResponseContent};

use crate::api::errors::error_response::{Answer, answer};
use crate::api::errors::problem::ProblemJson;
use crate::error::Error;

/// A problem response as an operation documents it: its status, what it means there, and the
/// headers it carries (besides the problem details themselves).
pub struct DocumentedProblem {
    status: u16,
    description: &'static str,
    headers: &'static [DocumentedHeader],
}

/// A header of a documented response.
pub struct DocumentedHeader {
    name: &'static str,
    description: Option<&'static str>,
    required: bool,
    schema: fn() -> MetaSchemaRef,
}

/// The problems an operation documents, in the order its document lists them, in groups (its
/// own, then those it shares with others).
pub trait Documented: 'static {
    const PROBLEMS: &'static [&'static [DocumentedProblem]];
}

/// Declares an operation's [`Documented`] problems: `Name: [own, …] + SHARED_GROUP`.
macro_rules! documented {
    ($(#[$meta:meta])* $vis:vis $name:ident: [$($problem:expr),* $(,)?] $(+ $shared:ident)*) => {
        $(#[$meta])*
        $vis enum $name {}

        impl $crate::api::openapi::operation_errors::Documented for $name {
            const PROBLEMS: &'static [&'static [$crate::api::openapi::operation_errors::DocumentedProblem]] =
                &[&[$($problem),*] $(, $shared)*];
        }
    };
}
pub(crate) use documented;

impl DocumentedProblem {
    pub const fn new(status: u16, description: &'static str) -> Self {
        Self {
            status,
            description,
            headers: &[],
        }
    }

    pub const fn with_headers(self, headers: &'static [DocumentedHeader]) -> Self {
        Self { headers, ..self }
    }

    fn meta(&self) -> MetaResponse {
        MetaResponse {
            description: self.description,
            status: Some(self.status),
            status_range: None,
            content: ProblemJson::media_types(),
            headers: self.headers.iter().map(DocumentedHeader::meta).collect(),
        }
    }
}

impl DocumentedHeader {
    /// A header whose value is a `T` (an `Option` for one that may be absent).
    pub const fn new<T: Type>(name: &'static str, description: Option<&'static str>) -> Self {
        Self {
            name,
            description,
            required: T::IS_REQUIRED,
            schema: T::schema_ref,
        }
    }

    fn meta(&self) -> MetaHeader {
        MetaHeader {
            name: self.name.to_uppercase(),
            description: self.description.map(str::to_owned),
            required: self.required,
            deprecated: false,
            schema: (self.schema)(),
        }
    }
}

/// `WWW-Authenticate`, on every 401.
pub const CHALLENGE: DocumentedHeader = DocumentedHeader::new::<String>("WWW-Authenticate", None);

/// `Retry-After` in seconds, undescribed (as on the admin 429 and every 503).
pub const RETRY_AFTER: DocumentedHeader = DocumentedHeader::new::<u64>("Retry-After", None);

/// 400, where a JSON body is read.
pub const BODY_NOT_JSON: DocumentedProblem =
    DocumentedProblem::new(400, "The body is not JSON (or is empty).");

/// 500 and 503, which every operation may answer, last.
pub const SERVER_FAULTS: &[DocumentedProblem] = &[
    DocumentedProblem::new(500, "An unexpected server fault; nothing was changed."),
    DocumentedProblem::new(
        503,
        "The database is unreachable; nothing was changed. Retry after the given seconds.",
    )
    .with_headers(&[RETRY_AFTER]),
];

/// An error of operation `D`: the crate's [`Error`] answered with one of the statuses `D`
/// documents.
pub struct OperationError<D> {
    answer: Answer,
    operation: PhantomData<fn() -> D>,
}

impl<D: Documented> OperationError<D> {
    fn documents(status: StatusCode) -> bool {
        D::PROBLEMS
            .iter()
            .flat_map(|group| group.iter())
            .any(|problem| problem.status == status.as_u16())
    }
}

impl<D: Documented> From<Error> for OperationError<D> {
    fn from(error: Error) -> Self {
        Self {
            answer: answer(&error, Self::documents),
            operation: PhantomData,
        }
    }
}

impl<D: Documented> ApiResponse for OperationError<D> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: D::PROBLEMS
                .iter()
                .flat_map(|group| group.iter())
                .map(DocumentedProblem::meta)
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        ProblemJson::register(registry);
    }
}

impl<D> IntoResponse for OperationError<D> {
    fn into_response(self) -> Response {
        self.answer.into_response()
    }
}

impl<D> From<OperationError<D>> for poem::Error {
    fn from(error: OperationError<D>) -> Self {
        poem::Error::from_response(error.into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    documented! {
        /// An operation that may only say "not found".
        FindsThings: [DocumentedProblem::new(404, "Nothing has this id.")] + SERVER_FAULTS
    }

    fn status(error: Error) -> u16 {
        OperationError::<FindsThings>::from(error)
            .into_response()
            .status()
            .as_u16()
    }

    #[test]
    fn an_operation_answers_with_the_statuses_it_documents_and_500_otherwise() {
        assert_eq!(status(Error::NotFound("thing")), 404);
        assert_eq!(status(Error::Internal(anyhow::anyhow!("boom"))), 500);
        assert_eq!(status(Error::Conflict("taken", "taken".into())), 500);
        assert_eq!(status(Error::invalid("id", "must be an integer")), 500);
    }

    #[test]
    fn the_document_lists_the_problems_in_their_groups_order() {
        let meta = OperationError::<FindsThings>::meta();
        let listed: Vec<_> = meta
            .responses
            .iter()
            .map(|response| (response.status, response.description))
            .collect();
        assert_eq!(
            listed,
            [
                (Some(404), "Nothing has this id."),
                (
                    Some(500),
                    "An unexpected server fault; nothing was changed."
                ),
                (
                    Some(503),
                    "The database is unreachable; nothing was changed. Retry after the given \
                     seconds."
                ),
            ]
        );
        assert_eq!(
            meta.responses[0].content[0].content_type,
            "application/problem+json"
        );
    }
}
