//! What the benchmarks share.

/// Twenty fixed PRD requests (a title and what is asked), the set drafts are measured on.
pub const REQUESTS: [(&str, &str); 20] = [
    ("Offline notes", "Field teams lose notes when offline. The app must sync edits when the connection returns."),
    (
        "One-tap checkout",
        "Checkout takes six steps and half of mobile buyers give up. Returning buyers should pay in one tap.",
    ),
    (
        "Shared moodboards",
        "Designers email screenshots to clients. Clients should comment on a shared moodboard instead.",
    ),
    (
        "Firmware builds",
        "Engineers build STM32 firmware by hand. Builds should run on every push with logs streamed live.",
    ),
    (
        "Support inbox",
        "Support agents miss urgent tickets in a shared inbox. Urgent tickets must reach an agent within five minutes.",
    ),
    ("Expense reports", "Employees wait weeks for expense refunds. Managers should approve expenses from their phone."),
    (
        "Clinic booking",
        "Patients phone the clinic to book. They should book and cancel appointments online at any hour.",
    ),
    (
        "Warehouse picking",
        "Pickers walk twice the distance they need to. The app should order picks by shelf location.",
    ),
    (
        "Course feedback",
        "Teachers collect feedback on paper. Students should rate each lesson anonymously in a minute.",
    ),
    (
        "Energy dashboard",
        "Facility managers cannot see which building wastes power. A dashboard should show hourly use per building.",
    ),
    (
        "Recipe planner",
        "Families throw away food they forgot. The planner should suggest meals from what is in the fridge.",
    ),
    ("Contract search", "Lawyers search contracts by file name. They need full-text search across every clause."),
    (
        "Volunteer shifts",
        "Charities fill volunteer shifts by group email. Volunteers should claim shifts and get reminders.",
    ),
    ("Fleet tracking", "Dispatchers phone drivers to learn where they are. They should see every van on a live map."),
    (
        "Release notes",
        "Release notes are written by hand from commit logs. They should be drafted from merged pull requests.",
    ),
    (
        "Library loans",
        "Readers cannot tell whether a book is on the shelf. The catalogue should show live availability.",
    ),
    (
        "Sales forecasts",
        "Sales leads forecast in spreadsheets that disagree. One forecast should update from the CRM every night.",
    ),
    (
        "Hotel housekeeping",
        "Housekeepers learn which rooms to clean from a printed list. The list should update as guests check out.",
    ),
    ("Password resets", "A third of helpdesk calls are password resets. Users should reset their own password safely."),
    ("Event check-in", "Queues at event entrances last half an hour. Attendees should check in by scanning a code."),
];

/// A Quire server running in this process on a free local port, with its rate limits lifted
/// and one account signed up (`bench@example.com`), for benchmarks that go through HTTP.
pub struct Served {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The account's access token.
    pub token: String,
    /// The id of a workspace the account made, "Bench".
    pub ws: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The server's application (to start workers on).
    pub app: quire_server::App,
}

/// Starts Quire over `store` with `config` (its rate limits lifted) and signs up an account.
pub async fn serve(store: std::sync::Arc<dyn quire_store::Store>, mut config: quire_server::ServerConfig) -> Served {
    let lots = quire_server::ratelimit::parse_windows("100000000/min").unwrap();
    config.rate_limits = quire_server::ratelimit::RateLimits { default: lots.clone(), auth: lots.clone(), ai: lots };
    let app = quire_server::App::new(store, config, Default::default()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(quire_server::serve(listener, app.clone(), async move {
        let _ = stopped.await;
    }));
    let signup =
        serde_json::json!({"email": "bench@example.com", "password": "correct horse battery", "name": "Bench"});
    let r: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/signup"))
        .json(&signup)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = r["access_token"].as_str().expect("signed up").to_string();
    let ws: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/workspaces"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "Bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ws = ws["id"].as_str().expect("a workspace").to_string();
    Served { base, token, ws, stop, server, app }
}

impl Served {
    /// Stops the server and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}
