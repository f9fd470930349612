//! `GET /api/v1/events`: the outbox as Server-Sent Events, live and resumable.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::{self, Stream};
use quire_core::{Event, EventFilter, Principal};
use quire_store::EventTail;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::App;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Actor, Query};

/// Query parameters of `GET /api/v1/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamEvents {
    /// Only this workspace's events (its id).
    workspace: Option<String>,
    /// Comma-separated names or prefixes: `prd.created,workspace.*`.
    names: Option<String>,
    /// Start after this event id (0 replays the whole outbox). `Last-Event-ID` wins when both
    /// are given; with neither, the stream starts with the next event.
    after: Option<i64>,
}

/// Stream events as Server-Sent Events: `id` is the event id, `event` its name
/// (`prd.created`, …), `data` the Event as JSON. Reconnect with `Last-Event-ID` to
/// resume exactly after the last event received.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(StreamEvents,
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id")),
    responses((status = 200, content_type = "text/event-stream", body = Event,
        description = "A stream of `id`/`event`/`data` frames, one per event, with keep-alive comments"),
        (status = 400, body = ErrorBody)))]
pub async fn stream_events(
    State(app): State<App>,
    Actor(who): Actor,
    crate::extract::Expires(expires): crate::extract::Expires,
    Query(p): Query<StreamEvents>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let last_event_id = crate::extract::last_event_id(&headers, "an event id")?;
    let after = match last_event_id.or(p.after) {
        Some(n) => n.max(0),
        None => app.store().last_event_id().await?,
    };
    let filter = EventFilter {
        workspace_id: p.workspace,
        names: p
            .names
            .map(|n| n.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
            .unwrap_or_default(),
    };
    let keep_alive = KeepAlive::new().interval(app.config().sse_keep_alive);
    let slot = app.open_connection(&who)?;
    let ended = app.credential_ended(who.clone(), expires);
    let events = event_stream(app, who, after, filter).take_until(ended).map(move |event| {
        let _open = &slot; // held as long as the stream is
        event
    });
    Ok(Sse::new(events).keep_alive(keep_alive).into_response())
}

/// The outbox tail as an SSE body that ends when the server shuts down.
fn event_stream(
    app: App,
    who: Principal,
    after: i64,
    filter: EventFilter,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let tail = EventTail::new(app.store().clone(), who, after, filter, app.config().events_poll_interval);
    let shutdown = app.shutdown_signal();
    stream::unfold((tail, shutdown), |(mut tail, mut shutdown)| async move {
        if *shutdown.borrow() {
            return None;
        }
        tokio::select! {
            event = tail.next() => Some((Ok(to_sse(&event)), (tail, shutdown))),
            _ = shutdown.changed() => None,
        }
    })
}

fn to_sse(event: &Event) -> SseEvent {
    SseEvent::default()
        .id(event.id.to_string())
        .event(&event.name)
        .data(serde_json::to_string(event).expect("events serialise"))
}
