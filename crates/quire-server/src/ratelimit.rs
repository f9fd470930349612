//! Request rate limits (seed 001 §5.1): fixed windows per minute, hour and day, per caller
//! (user, API key, or address for anonymous calls) and per route class. Counters live in
//! memory on one node, or in Redis so that every node shares them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use quire_core::Principal;

use crate::App;
use crate::error::ApiError;

/// At most `limit` requests per `secs`-second window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: u64,
    pub secs: u64,
}

/// Parses `100/min,1000/h,10000/day` (units `s`, `min`, `h`, `day`); `off` is no limit.
pub fn parse_windows(spec: &str) -> Result<Vec<Window>, String> {
    if spec.trim() == "off" {
        return Ok(Vec::new());
    }
    spec.split(',')
        .map(|part| {
            let (n, unit) =
                part.trim().split_once('/').ok_or_else(|| format!("'{part}' is not COUNT/UNIT, e.g. 100/min"))?;
            let limit: u64 = n.trim().parse().map_err(|_| format!("'{n}' in '{part}' is not a count"))?;
            let secs = match unit.trim() {
                "s" | "sec" | "second" => 1,
                "m" | "min" | "minute" => 60,
                "h" | "hour" => 3600,
                "d" | "day" => 86_400,
                other => return Err(format!("unknown unit '{other}' in '{part}'; use s, min, h or day")),
            };
            if limit == 0 {
                return Err(format!("'{part}' allows nothing; use 'off' to disable a limit instead"));
            }
            Ok(Window { limit, secs })
        })
        .collect()
}

/// Which limits a route falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Sign-up, sign-in and refresh: tighter, keyed by address.
    Auth,
    /// Calls to AI providers (generation, embeddings): their own budget. Reading templates,
    /// providers or the log is `Default`.
    Ai,
    Default,
}

impl RouteClass {
    fn of(route: &str) -> Option<RouteClass> {
        if matches!(route, "/healthz" | "/readyz" | "/metrics")
            || route.starts_with("/api/docs")
            || route == "/api/openapi.json"
        {
            None
        } else if route.starts_with("/api/v1/auth/") {
            Some(RouteClass::Auth)
        } else if matches!(route, "/api/v1/ai/generate" | "/api/v1/ai/embeddings") {
            Some(RouteClass::Ai)
        } else {
            Some(RouteClass::Default)
        }
    }

    fn name(self) -> &'static str {
        match self {
            RouteClass::Auth => "auth",
            RouteClass::Ai => "ai",
            RouteClass::Default => "default",
        }
    }
}

/// The limits of each route class.
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub default: Vec<Window>,
    pub auth: Vec<Window>,
    pub ai: Vec<Window>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            // A person working in the web app all day makes thousands of calls.
            default: parse_windows("300/min,6000/h,60000/day").expect("valid"),
            auth: parse_windows("20/min,200/h,2000/day").expect("valid"),
            ai: parse_windows("20/min,200/h,1000/day").expect("valid"),
        }
    }
}

/// Where counters live.
pub enum Counters {
    Memory { map: Mutex<HashMap<String, (u64, Instant)>>, hits: AtomicU64 },
    Redis(redis::aio::ConnectionManager),
}

impl Counters {
    pub fn memory() -> Counters {
        Counters::Memory { map: Mutex::new(HashMap::new()), hits: AtomicU64::new(0) }
    }

    /// Connects to Redis; the connection manager reconnects by itself afterwards.
    pub async fn redis(url: &str) -> Result<Counters, String> {
        let client = redis::Client::open(url).map_err(|e| format!("the Redis URL is not valid: {e}"))?;
        let manager = redis::aio::ConnectionManager::new(client)
            .await
            .map_err(|e| format!("cannot connect to Redis at {}: {e}", quire_store::redact_url(url)))?;
        Ok(Counters::Redis(manager))
    }

    /// Adds one to each `(key, ttl)` counter and returns the new counts.
    async fn hit(&self, keys: &[(String, u64)]) -> Result<Vec<u64>, String> {
        match self {
            Counters::Memory { map, hits } => {
                let now = Instant::now();
                let mut map = map.lock().expect("rate counters");
                if hits.fetch_add(1, Ordering::Relaxed) % 1024 == 0 {
                    map.retain(|_, (_, expires)| *expires > now);
                }
                Ok(keys
                    .iter()
                    .map(|(key, ttl)| {
                        let entry = map.entry(key.clone()).or_insert((0, now + Duration::from_secs(*ttl)));
                        if entry.1 <= now {
                            *entry = (0, now + Duration::from_secs(*ttl));
                        }
                        entry.0 += 1;
                        entry.0
                    })
                    .collect())
            }
            Counters::Redis(manager) => {
                let mut pipe = redis::pipe();
                pipe.atomic();
                for (key, ttl) in keys {
                    pipe.incr(key, 1u64).cmd("EXPIRE").arg(key).arg(*ttl).arg("NX").ignore();
                }
                let mut conn = manager.clone();
                pipe.query_async::<Vec<u64>>(&mut conn).await.map_err(|e| e.to_string())
            }
        }
    }

    /// For readiness: `None` when in memory, else whether Redis answers.
    pub async fn ping(&self) -> Option<Result<(), String>> {
        match self {
            Counters::Memory { .. } => None,
            Counters::Redis(manager) => {
                let mut conn = manager.clone();
                Some(redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ()).map_err(|e| e.to_string()))
            }
        }
    }
}

/// The verdict on one request, with what the headers report: the window closest to its
/// limit.
struct Decision {
    allowed: bool,
    limit: u64,
    remaining: u64,
    reset: u64,
    /// Refused, and not for the first time in any window it exceeds.
    repeat: bool,
}

/// On a 429 that repeats one already answered in the same window: the audit trail records
/// the first refusal, not each of a flood.
#[derive(Debug, Clone, Copy)]
pub struct RepeatedRefusal;

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

async fn decide(counters: &Counters, windows: &[Window], class: RouteClass, who: &str) -> Result<Decision, String> {
    let now = now_secs();
    let keys: Vec<(String, u64)> = windows
        .iter()
        .map(|w| (format!("quire:rl:{}:{who}:{}:{}", class.name(), w.secs, now / w.secs), w.secs))
        .collect();
    let counts = counters.hit(&keys).await?;
    let mut decision = Decision { allowed: true, limit: 0, remaining: u64::MAX, reset: 0, repeat: false };
    let mut first_refusal = false;
    for (w, count) in windows.iter().zip(counts) {
        let remaining = w.limit.saturating_sub(count);
        let reset = (now / w.secs + 1) * w.secs;
        if count > w.limit {
            first_refusal |= count == w.limit + 1;
            // Over in this window: the caller waits for the latest reset among exceeded windows.
            if decision.allowed || reset > decision.reset {
                decision = Decision { allowed: false, limit: w.limit, remaining: 0, reset, repeat: false };
            }
        } else if decision.allowed && remaining < decision.remaining {
            decision = Decision { allowed: true, limit: w.limit, remaining, reset, repeat: false };
        }
    }
    decision.repeat = !decision.allowed && !first_refusal;
    Ok(decision)
}

/// The key a caller is counted under.
fn caller_key(who: &Principal, ip: Option<String>) -> String {
    match who {
        Principal::User { id, .. } => format!("user:{id}"),
        Principal::ApiKey { id, .. } => format!("key:{id}"),
        _ => format!("ip:{}", ip.unwrap_or_else(|| "unknown".into())),
    }
}

/// The middleware: counts the request, answers 429 past a limit, and reports the tightest
/// window in `X-RateLimit-Limit`, `-Remaining` and `-Reset` (a Unix time). If Redis fails,
/// requests pass (and readiness says so) rather than the whole API going down.
pub async fn limit(State(app): State<App>, req: Request, next: Next) -> Response {
    let Some(class) = req.extensions().get::<MatchedPath>().and_then(|p| RouteClass::of(p.as_str())) else {
        return next.run(req).await;
    };
    let limits = &app.config().rate_limits;
    let windows = match class {
        RouteClass::Auth => &limits.auth,
        RouteClass::Ai => &limits.ai,
        RouteClass::Default => &limits.default,
    };
    if windows.is_empty() {
        return next.run(req).await;
    }
    let who = req.extensions().get::<Principal>().cloned().unwrap_or(Principal::Anonymous);
    let ip = crate::client_ip(&req, app.config().trusted_proxies);
    // Sign-in routes are counted by address: the caller has no identity yet.
    let key = if class == RouteClass::Auth { caller_key(&Principal::Anonymous, ip) } else { caller_key(&who, ip) };
    let decision = match decide(app.rate_counters(), windows, class, &key).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "rate limit counters unavailable; letting the request through");
            return next.run(req).await;
        }
    };
    let mut res = if decision.allowed { next.run(req).await } else { refusal(&decision) };
    report(&mut res, &decision);
    res
}

/// The 429 for a refused decision.
fn refusal(decision: &Decision) -> Response {
    let wait = decision.reset.saturating_sub(now_secs()).max(1);
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("rate limit of {} requests reached; retry in {wait} s", decision.limit),
    );
    e.retry_after = Some(wait);
    let mut res = e.into_response();
    if decision.repeat {
        res.extensions_mut().insert(RepeatedRefusal);
    }
    res
}

fn report(res: &mut Response, decision: &Decision) {
    let headers = res.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(decision.reset));
}

/// Counts a refused bearer credential against its address, on the sign-in budget: a caller
/// guessing tokens is slowed as one guessing passwords is. `Some` is the 429 to answer
/// instead of the 401 once the budget is spent. Authentication runs before the per-route
/// limit, so without this a flood of bad tokens was never limited (and each was audited).
pub(crate) async fn refused_credential(app: &App, ip: Option<String>) -> Option<Response> {
    let windows = &app.config().rate_limits.auth;
    if windows.is_empty() {
        return None;
    }
    let key = format!("bad-credential:{}", caller_key(&Principal::Anonymous, ip));
    match decide(app.rate_counters(), windows, RouteClass::Auth, &key).await {
        Ok(d) if !d.allowed => {
            let mut res = refusal(&d);
            report(&mut res, &d);
            Some(res)
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "rate limit counters unavailable; not counting a refused credential");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_reject_nonsense() {
        assert_eq!(
            parse_windows("100/min, 1000/h,10000/day").unwrap(),
            vec![
                Window { limit: 100, secs: 60 },
                Window { limit: 1000, secs: 3600 },
                Window { limit: 10_000, secs: 86_400 }
            ]
        );
        assert!(parse_windows("off").unwrap().is_empty());
        for bad in ["100", "x/min", "5/fortnight", "0/min", ""] {
            assert!(parse_windows(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn route_classes() {
        assert_eq!(RouteClass::of("/api/v1/auth/login"), Some(RouteClass::Auth));
        assert_eq!(RouteClass::of("/api/v1/ai/generate"), Some(RouteClass::Ai));
        assert_eq!(RouteClass::of("/api/v1/ai/embeddings"), Some(RouteClass::Ai));
        assert_eq!(RouteClass::of("/api/v1/ai/templates"), Some(RouteClass::Default));
        assert_eq!(RouteClass::of("/api/v1/documents/{id}"), Some(RouteClass::Default));
        assert_eq!(RouteClass::of("/healthz"), None);
        assert_eq!(RouteClass::of("/metrics"), None);
    }

    #[tokio::test]
    async fn the_tightest_window_decides_and_reports() {
        let counters = Counters::memory();
        // Hour and day windows, so that no boundary falls between the calls.
        let windows = [Window { limit: 3, secs: 3600 }, Window { limit: 5, secs: 86_400 }];
        let mut seen = Vec::new();
        for _ in 0..4 {
            let d = decide(&counters, &windows, RouteClass::Default, "user:a").await.unwrap();
            seen.push((d.allowed, d.limit, d.remaining));
        }
        assert_eq!(seen, [(true, 3, 2), (true, 3, 1), (true, 3, 0), (false, 3, 0)]);
        // Another caller has a budget of its own.
        assert!(decide(&counters, &windows, RouteClass::Default, "user:b").await.unwrap().allowed);
    }
}
