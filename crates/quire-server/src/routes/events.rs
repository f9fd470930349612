//! `GET /api/v1/events`: the outbox as Server-Sent Events, live and resumable.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use quire_core::{Event, EventFilter, Principal};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::App;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Actor, Query};

/// Events read from the store per round trip.
const BATCH: u32 = 256;

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
/// (`prd.created`, …), `data` the [`Event`] as JSON. Reconnect with `Last-Event-ID` to
/// resume exactly after the last event received.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(StreamEvents,
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id")),
    responses((status = 200, content_type = "text/event-stream", body = Event,
        description = "A stream of `id`/`event`/`data` frames, one per event, with keep-alive comments"),
        (status = 400, body = ErrorBody)))]
pub async fn stream_events(
    State(app): State<App>,
    Actor(who): Actor,
    Query(p): Query<StreamEvents>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let last_event_id = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "Last-Event-ID must be an event id (an integer)",
                    )
                })?,
        ),
        None => None,
    };
    let after = match last_event_id.or(p.after) {
        Some(n) => n.max(0),
        None => app.store().last_event_id().await?,
    };
    let filter = EventFilter {
        workspace_id: p.workspace,
        names: p
            .names
            .map(|n| {
                n.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
    };
    let keep_alive = KeepAlive::new().interval(app.config().sse_keep_alive);
    Ok(Sse::new(event_stream(app, who, after, filter))
        .keep_alive(keep_alive)
        .into_response())
}

struct Tail {
    app: App,
    who: Principal,
    after: i64,
    filter: EventFilter,
    buffer: VecDeque<Event>,
    signal: tokio::sync::watch::Receiver<u64>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

/// Tails the outbox: drains what is there, then sleeps until a commit ticks the store's
/// signal (or the poll interval passes, for writers the signal cannot reach) and reads again.
/// Ends when the server shuts down.
fn event_stream(
    app: App,
    who: Principal,
    after: i64,
    filter: EventFilter,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let tail = Tail {
        signal: app.store().event_signal(),
        shutdown: app.shutdown_signal(),
        app,
        who,
        after,
        filter,
        buffer: VecDeque::new(),
    };
    stream::unfold(tail, |mut t| async move {
        loop {
            if let Some(event) = t.buffer.pop_front() {
                t.after = event.id;
                return Some((Ok(to_sse(&event)), t));
            }
            if *t.shutdown.borrow() {
                return None;
            }
            t.signal.mark_unchanged();
            match t
                .app
                .store()
                .events_after(&t.who, t.after, &t.filter, BATCH)
                .await
            {
                Ok(events) if !events.is_empty() => {
                    t.buffer.extend(events);
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reading the event outbox failed; retrying"),
            }
            let poll: Duration = t.app.config().events_poll_interval;
            tokio::select! {
                _ = t.signal.changed() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = t.shutdown.changed() => return None,
            }
        }
    })
}

fn to_sse(event: &Event) -> SseEvent {
    SseEvent::default()
        .id(event.id.to_string())
        .event(&event.name)
        .data(serde_json::to_string(event).expect("events serialise"))
}
