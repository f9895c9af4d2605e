//! The events feed under `/api/v1/events`: container lifecycle events and host liveness
//! transitions, fleet-wide, as pages (oldest first) or as a live Server-Sent Events stream.
//!
//! The stream is a view of the `events` table, not a second source of truth: it replays from the
//! table what the client missed (its `Last-Event-ID`), then follows the process's
//! [`EventFeed`](crate::store::event_feed::EventFeed), skipping by id what the replay sent.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use poem::Request;
use poem::web::Data;
use poem::web::sse::Event as SseEvent;
use poem_openapi::auth::ApiKey;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme};

use super::{ADMIN_AUTHENTICATION, AdminToken, admin_session_of};
use crate::api::openapi::operation_errors::{
    DocumentedProblem, OperationError, SERVER_FAULTS, documented,
};
use crate::api::{ApiTags, AppState};
use crate::domain::FieldError;
use crate::domain::host::default_page_size;
use crate::domain::host::{Cursor, container_id_filter};
use crate::error::Error;
use crate::store::Store;
use crate::store::admin_tokens::AdminSession;
use crate::store::event_feed::{RecvError, Subscription};
use crate::store::events::{Event, EventFilter, EventKind};

/// Events a stream reads from the table per query while it replays.
const REPLAY_PAGE: i64 = 500;

#[derive(Default)]
pub struct EventsApi;

/// One page of the events feed, oldest first.
#[derive(Debug, Clone, Object)]
pub struct EventFeedPage {
    /// Events, oldest (lowest id) first.
    pub items: Vec<Event>,
    /// Pass as `cursor` to get the next page; null on the last page (continue later with
    /// `after` = the last item's id).
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// Answer of `GET /api/v1/events`.
#[derive(ApiResponse)]
pub enum EventFeedResponse {
    /// A page of events.
    #[oai(status = 200)]
    Ok(Json<EventFeedPage>),
}

/// 422 of the events operations.
const MALFORMED_FILTER: DocumentedProblem = DocumentedProblem::new(
    422,
    "A malformed filter, limit, cursor or `Last-Event-ID`; `errors` names each.",
);

documented! {
    /// What `GET /api/v1/events` answers otherwise.
    pub ListEvents: [MALFORMED_FILTER] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

documented! {
    /// What `GET /api/v1/events/stream` answers otherwise.
    pub StreamEvents: [MALFORMED_FILTER] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// The admin token as the query parameter `access_token`, for browsers' `EventSource`, which
/// cannot send headers. Prefer the header: a URL is more often written down (proxy logs,
/// browser history) than a header. This server never logs query strings.
#[derive(SecurityScheme)]
#[oai(
    ty = "api_key",
    key_name = "access_token",
    key_in = "query",
    checker = "admin_session_from_query"
)]
pub struct AdminQueryToken(pub AdminSession);

async fn admin_session_from_query(request: &Request, key: ApiKey) -> poem::Result<AdminSession> {
    admin_session_of(request, &key.key).await
}

/// The stream's authorisation: an admin token in the `Authorization` header, or in the
/// `access_token` query parameter.
#[derive(SecurityScheme)]
pub enum StreamAuthorization {
    Query(AdminQueryToken),
    Header(AdminToken),
}

/// The live stream.
pub type LiveEvents = EventStream<BoxStream<'static, Event>>;

/// Answer of `GET /api/v1/events/stream`.
#[derive(ApiResponse)]
pub enum EventStreamResponse {
    /// Server-Sent Events, one message per event: `id:` the event's id, `event:` its kind,
    /// `data:` the event as JSON (an `Event`). A comment line (`:`) every 15 seconds keeps idle
    /// connections open. Reconnect with `Last-Event-ID` to resume without gap or repeat.
    #[oai(status = 200)]
    Ok(LiveEvents),
}

/// The filters both operations share, checked.
fn event_filter(
    host_id: Option<i64>,
    container_id: Option<String>,
    kinds: Vec<EventKind>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<EventFilter, Vec<FieldError>> {
    let mut errors = Vec::new();
    if let (Some(since), Some(until)) = (since, until)
        && since >= until
    {
        errors.push(FieldError::new("until", "must be after `since`"));
    }
    if let Some(Err(error)) = container_id
        .as_deref()
        .map(|id| container_id_filter("container_id", id))
    {
        errors.push(error);
    }
    if errors.is_empty() {
        Ok(EventFilter {
            host_id,
            container_id,
            kinds,
            since,
            until,
        })
    } else {
        Err(errors)
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Admin")]
impl EventsApi {
    /// List events
    ///
    /// Container lifecycle events (`created`, `removed`, `state_changed`, `health_changed`,
    /// `restarted`, `oom_killed`) and host liveness transitions (`online`, `offline`,
    /// `recovered`) of the whole fleet, oldest first by id. Ids increase in the order events
    /// are written, so `after` = the last id seen returns every event written since, none
    /// twice. Pages like the other listings: pass `next_cursor` as `cursor`.
    #[oai(path = "/events", method = "get", operation_id = "list_events")]
    #[expect(
        clippy::too_many_arguments,
        reason = "each query parameter is an argument, so the document lists it"
    )]
    async fn list_events(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// Only events with an id above this one.
        #[oai(validator(minimum(value = "0")))]
        after: Query<Option<i64>>,
        /// Only events of this host (its id).
        host_id: Query<Option<i64>>,
        /// Only events of this container (Docker's id).
        #[oai(validator(max_length = 80))]
        container_id: Query<Option<String>>,
        /// Only events of these kinds; repeat for several.
        #[oai(default)]
        kind: Query<Vec<EventKind>>,
        /// Only events at or after this instant (RFC 3339).
        since: Query<Option<DateTime<Utc>>>,
        /// Only events before this instant (RFC 3339).
        until: Query<Option<DateTime<Utc>>>,
        /// Events per page.
        #[oai(
            default = "default_page_size",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u32>,
        /// Where to continue: the `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<EventFeedResponse, OperationError<ListEvents>> {
        let mut errors = Vec::new();
        let filter = event_filter(host_id.0, container_id.0, kind.0, since.0, until.0)
            .unwrap_or_else(|e| {
                errors.extend(e);
                EventFilter::default()
            });
        let cursor = match cursor
            .0
            .as_deref()
            .map(|text| Cursor::parse("cursor", text))
        {
            Some(Err(error)) => {
                errors.push(error);
                None
            }
            Some(Ok(cursor)) => Some(cursor.0),
            None => None,
        };
        if cursor.is_some() && after.0.is_some() {
            errors.push(FieldError::new(
                "cursor",
                "give `cursor` or `after`, not both",
            ));
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors).into());
        }
        let after = cursor.or(after.0).unwrap_or(0);
        let limit = i64::from(limit.0);
        let mut items = state
            .reads
            .run(|store| store.events_after(&filter, after, limit + 1))
            .await?;
        let next_cursor = (items.len() as i64 > limit).then(|| {
            items.truncate(limit as usize);
            Cursor(items[items.len() - 1].id).encode()
        });
        Ok(EventFeedResponse::Ok(Json(EventFeedPage {
            items,
            next_cursor,
        })))
    }

    /// Stream events
    ///
    /// The events of `GET /api/v1/events`, live, as Server-Sent Events (`text/event-stream`),
    /// with the same filters. Each message's `id:` is the event's id and `event:` its kind;
    /// `data:` is the event. A client reconnecting with `Last-Event-ID` (or `after`) first
    /// receives every matching event it missed, then live ones, none twice. Without either the
    /// stream starts with the next event. An event written through any server process arrives
    /// within about a second. A comment heartbeat (`:`) comes every 15 seconds. A client that
    /// falls too far behind is cut off; it resumes with `Last-Event-ID`.
    ///
    /// Authorisation: an admin token in the `Authorization` header, or, for browsers'
    /// `EventSource` (which cannot send headers), in the `access_token` query parameter. The
    /// header is preferred: URLs end up in proxy logs and browser history.
    #[oai(
        path = "/events/stream",
        method = "get",
        operation_id = "stream_events"
    )]
    #[expect(
        clippy::too_many_arguments,
        reason = "each query parameter is an argument, so the document lists it"
    )]
    async fn stream_events(
        &self,
        state: Data<&AppState>,
        _auth: StreamAuthorization,
        /// Only events with an id above this one (`Last-Event-ID` wins when both are given).
        #[oai(validator(minimum(value = "0")))]
        after: Query<Option<i64>>,
        /// Only events of this host (its id).
        host_id: Query<Option<i64>>,
        /// Only events of this container (Docker's id).
        #[oai(validator(max_length = 80))]
        container_id: Query<Option<String>>,
        /// Only events of these kinds; repeat for several.
        #[oai(default)]
        kind: Query<Vec<EventKind>>,
        /// Only events at or after this instant (RFC 3339).
        since: Query<Option<DateTime<Utc>>>,
        /// Only events before this instant (RFC 3339).
        until: Query<Option<DateTime<Utc>>>,
        /// The id of the last event received, sent by `EventSource` when it reconnects.
        #[oai(name = "Last-Event-ID")]
        last_event_id: Header<Option<String>>,
    ) -> Result<EventStreamResponse, OperationError<StreamEvents>> {
        let mut errors = Vec::new();
        let filter = event_filter(host_id.0, container_id.0, kind.0, since.0, until.0)
            .unwrap_or_else(|e| {
                errors.extend(e);
                EventFilter::default()
            });
        let resume = match last_event_id.0.as_deref().map(str::trim) {
            Some(text) => match text.parse::<i64>() {
                Ok(id) if id >= 0 => Some(id),
                _ => {
                    errors.push(FieldError::new(
                        "Last-Event-ID",
                        "is not an event id returned by this API",
                    ));
                    None
                }
            },
            None => after.0,
        };
        if !errors.is_empty() {
            return Err(Error::Validation(errors).into());
        }
        let mut subscription = state.event_feed.subscribe();
        subscription.listening().await?;
        // Without a resume point the stream starts now: what the table holds is not sent.
        let start = match resume {
            Some(id) => id,
            None => state.store.newest_event_id().await?,
        };
        let reader = StreamReader {
            store: state.store.clone(),
            filter,
            subscription,
            sent_up_to: start,
            replaying: true,
            pending: VecDeque::new(),
        };
        let events = stream::unfold(reader, StreamReader::next).boxed();
        Ok(EventStreamResponse::Ok(
            EventStream::new(events)
                .keep_alive(state.event_heartbeat)
                .to_event(|event| {
                    SseEvent::message(event.to_json_string())
                        .id(event.id.to_string())
                        .event_type(event.kind.name())
                }),
        ))
    }
}

/// One stream's position: it replays from the table until a short page, then follows the feed,
/// skipping what it sent already (an event both replayed and received) by id.
struct StreamReader {
    store: Store,
    filter: EventFilter,
    subscription: Subscription,
    /// The last event sent (or where the stream started).
    sent_up_to: i64,
    replaying: bool,
    pending: VecDeque<Event>,
}

impl StreamReader {
    /// The next event to send; `None` ends the stream: the reader fell further behind than the
    /// feed holds (cut off), the feed's listener ended, or the database failed while
    /// replaying. The client then resumes with `Last-Event-ID`.
    async fn next(mut self) -> Option<(Event, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.sent_up_to = event.id;
                return Some((event, self));
            }
            if self.replaying {
                let page = self
                    .store
                    .events_after(&self.filter, self.sent_up_to, REPLAY_PAGE)
                    .await;
                let page = match page {
                    Ok(page) => page,
                    Err(error) => {
                        tracing::warn!(error = format!("{error:#}"), "event stream replay failed");
                        return None;
                    }
                };
                self.replaying = page.len() as i64 == REPLAY_PAGE;
                self.pending.extend(page);
                continue;
            }
            match self.subscription.receiver.recv().await {
                Ok(event) if event.id > self.sent_up_to && self.filter.matches(&event) => {
                    self.pending.push_back(Arc::unwrap_or_clone(event));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "event stream fell behind; cut off");
                    return None;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}
