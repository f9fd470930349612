//! The `quire` binary as a user runs it: settings, serving, graceful stop, persistence,
//! PostgreSQL by URL, and clear errors for bad settings.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

mod common;
use common::*;

#[test]
fn serve_help_documents_every_setting() {
    let (ok, help, _) = run(&["serve", "--help"], &[]);
    assert!(ok);
    for (flag, env) in [
        ("--config", "QUIRE_CONFIG"),
        ("--addr", "QUIRE_ADDR"),
        ("--data-dir", "QUIRE_DATA_DIR"),
        ("--database-url", "QUIRE_DATABASE_URL"),
        ("--log-format", "QUIRE_LOG_FORMAT"),
        ("--log", "QUIRE_LOG"),
        ("--max-body-bytes", "QUIRE_MAX_BODY_BYTES"),
        ("--max-workspaces", "QUIRE_MAX_WORKSPACES"),
        ("--max-documents-per-workspace", "QUIRE_MAX_DOCUMENTS_PER_WORKSPACE"),
        ("--history-debounce-ms", "QUIRE_HISTORY_DEBOUNCE_MS"),
        ("--history-patch-chars", "QUIRE_HISTORY_PATCH_CHARS"),
        ("--history-keep", "QUIRE_HISTORY_KEEP"),
    ] {
        assert!(help.contains(flag) && help.contains(&format!("env: {env}")), "{flag}/{env} missing from:\n{help}");
    }
    assert!(help.contains("[default: 127.0.0.1:7420]") && help.contains("[default: ./quire-data]"));
}

#[test]
fn serves_on_sqlite_stops_gracefully_and_keeps_data() {
    let dir = temp_dir();
    let data = dir.join("data");
    let data = data.to_str().unwrap();
    let server = Server::start(&["--data-dir", data], &[]);
    let (status, ready) = server.request("GET", "/readyz", None);
    assert_eq!((status, ready["status"].as_str()), (200, Some("healthy")));
    assert!(ready.get("checks").is_none(), "anonymous callers see the status only: {ready}");
    assert_eq!(server.request("GET", "/api/v1/workspaces", None).0, 401, "the API needs a principal");
    let token = server.sign_in("ada@example.com");
    let t = Some(token.as_str());
    let (_, ready) = server.request_as(t, "GET", "/readyz", None);
    assert_eq!(ready["checks"]["database"]["kind"], "sqlite", "the instance admin sees the checks");
    let (status, ws) = server.request_as(t, "POST", "/api/v1/workspaces", Some(r#"{"name":"Kept"}"#));
    assert_eq!(status, 201);
    let (status, _) =
        server.request_as(t, "POST", "/api/v1/workspaces/kept/documents", Some(r#"{"kind":"prd","title":"Saved"}"#));
    assert_eq!(status, 201);
    assert!(server.stop().success(), "SIGTERM is a clean exit");
    assert!(Path::new(data).join("quire.db").exists());

    let server = Server::start(&["--data-dir", data], &[]);
    // The signing key lives in the database: tokens survive a restart.
    let (status, again) = server.request_as(t, "GET", "/api/v1/workspaces/kept", None);
    assert_eq!((status, &again["id"]), (200, &ws["id"]));
    let (_, docs) = server.request_as(t, "GET", "/api/v1/workspaces/kept/documents", None);
    assert_eq!(docs["items"][0]["title"], "Saved");
    server.stop();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn settings_come_from_file_environment_and_flags() {
    let dir = temp_dir();
    let file = dir.join("quire.toml");
    std::fs::write(
        &file,
        format!("data_dir = \"{}\"\nmax_body_bytes = 100\nlog_format = \"text\"\n", dir.join("d").display()),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    // The file's 100-byte limit applies...
    let server = Server::start(&["--config", file], &[("QUIRE_LOG_FORMAT", "json")]);
    let token = server.sign_in("ada@example.com");
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(150));
    assert_eq!(server.request_as(Some(&token), "POST", "/api/v1/workspaces", Some(&big)).0, 413);
    server.stop();
    // ...the environment overrides the file, and a flag overrides the environment.
    let mut server = Server::start(
        &["--config", file, "--max-body-bytes", "4096"],
        &[("QUIRE_MAX_BODY_BYTES", "32"), ("QUIRE_LOG_FORMAT", "json")],
    );
    assert_eq!(server.request_as(Some(&token), "POST", "/api/v1/workspaces", Some(&big)).0, 201);
    // QUIRE_LOG_FORMAT=json beat the file's text: request logs are JSON lines with a request id.
    let line = server.wait_for("finished processing request");
    let log: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    assert!(log["span"]["request_id"].as_str().is_some_and(|id| id.len() == 36), "{line}");
    assert!(dir.join("d").join("quire.db").exists(), "data_dir came from the file");
    server.stop();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_settings_fail_with_a_message_that_says_what_to_fix() {
    let (ok, _, err) = run(&["serve", "--config", "/nonexistent/quire.toml"], &[]);
    assert!(!ok && err.contains("cannot read the settings file") && err.contains("--config"), "{err}");
    let (ok, _, err) = run(&["migrate", "--database-url", "mysql://root@localhost/db"], &[]);
    assert!(!ok && err.contains("use sqlite://PATH or postgres://"), "{err}");
    let (ok, _, err) = run(&["serve", "--addr", "not-an-address"], &[]);
    assert!(!ok && err.contains("--addr"), "{err}");
    let (ok, _, err) = run(&["serve", "--queue-limits", "builds=0"], &[]);
    assert!(!ok && err.contains("queue_limits: 'builds=0' is not QUEUE=N"), "{err}");
    let (ok, _, err) = run(&["worker"], &[("QUIRE_WORKER_CONCURRENCY", "0")]);
    assert!(!ok && err.contains("worker_concurrency must be 1 to 1024"), "{err}");
    let (ok, _, err) = run(&["worker", "--job-lease-secs", "1"], &[]);
    assert!(!ok && err.contains("job_lease_secs must be at least 3"), "{err}");
    let (ok, _, err) = run(&["worker", "--history-keep", "0"], &[]);
    assert!(!ok && err.contains("history_keep must be at least 1"), "{err}");
    let (ok, _, err) = run(&["serve"], &[("QUIRE_HISTORY_DEBOUNCE_MS", "90000")]);
    assert!(!ok && err.contains("history_debounce_ms must be at most 60000"), "{err}");
    // A taken port is named, with the setting that changes it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = temp_dir();
    let (ok, _, err) = run(&["serve", "--addr", &addr, "--data-dir", dir.to_str().unwrap()], &[]);
    assert!(!ok && err.contains("cannot listen on") && err.contains("QUIRE_ADDR"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_on_postgresql_by_url() {
    // A schema of its own, left empty: `quire migrate` must create the tables.
    let url = quire_store::testing::empty_postgres_schema().await;
    let store_url = url.clone();
    let dir = temp_dir();
    let (ok, _, err) = run(&["migrate", "--data-dir", dir.to_str().unwrap()], &[("QUIRE_DATABASE_URL", &url)]);
    assert!(ok, "{err}");
    let server = tokio::task::spawn_blocking(move || {
        let server = Server::start(&["--data-dir", dir.to_str().unwrap()], &[("QUIRE_DATABASE_URL", url.as_str())]);
        let token = server.sign_in("ada@example.com");
        let ready = server.request_as(Some(&token), "GET", "/readyz", None);
        let created = server.request_as(Some(&token), "POST", "/api/v1/workspaces", Some(r#"{"name":"Cluster"}"#));
        server.stop();
        std::fs::remove_dir_all(dir).unwrap();
        (ready, created)
    });
    let ((status, ready), (created, ws)) = server.await.unwrap();
    assert_eq!((status, ready["checks"]["database"]["kind"].as_str()), (200, Some("postgres")));
    assert_eq!(created, 201);
    // The row is in PostgreSQL, where the store sees it.
    let store = quire_store::connect(&store_url, Default::default()).await.unwrap();
    let got = store.get_workspace(&quire_core::Principal::System, "cluster", false).await.unwrap();
    assert_eq!(ws["id"], got.id.as_str());
}

/// Two `quire serve` processes on one PostgreSQL database, polling slowed to a minute so that
/// only NOTIFY can make them see each other's changes at once.
fn two_servers(url: &str, dir: &Path) -> (Server, Server) {
    two_servers_with(url, dir, &[])
}

fn two_servers_with(url: &str, dir: &Path, more: &[(&str, &str)]) -> (Server, Server) {
    let mut envs = vec![("QUIRE_DATABASE_URL", url), ("QUIRE_EVENTS_POLL_INTERVAL_MS", "60000")];
    envs.extend_from_slice(more);
    let start = || Server::start(&["--data-dir", dir.to_str().unwrap()], &envs);
    (start(), start())
}

/// Two `quire serve` processes on one PostgreSQL database: a change made through one reaches
/// an event stream opened on the other at once (by NOTIFY; polling is slowed to a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_state_and_events_through_postgresql() {
    let url = quire_store::testing::empty_postgres_schema().await;
    let outcome = tokio::task::spawn_blocking(move || {
        let dir = temp_dir();
        let (a, b) = two_servers(&url, &dir);
        // Signed up through A, used on B: the signing key is shared through the database.
        let token = a.sign_in("ada@example.com");

        let mut stream = TcpStream::connect(&b.addr).unwrap();
        write!(
            stream,
            "GET /api/v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n",
            b.addr
        )
        .unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        // Let B's stream reach its idle wait before A writes.
        std::thread::sleep(Duration::from_millis(300));

        let sent = std::time::Instant::now();
        let (status, ws) = a.request_as(Some(&token), "POST", "/api/v1/workspaces", Some(r#"{"name":"Shared"}"#));
        assert_eq!(status, 201);
        let mut seen = None;
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if let Some(data) = line.trim_end().strip_prefix("data: ") {
                seen = Some(serde_json::from_str::<Value>(data).unwrap());
                break;
            }
        }
        let latency = sent.elapsed();
        let (status, on_b) = b.request_as(Some(&token), "GET", "/api/v1/workspaces/shared", None);
        a.stop();
        b.stop();
        std::fs::remove_dir_all(dir).unwrap();
        (ws, seen, latency, status, on_b)
    });
    let (ws, seen, latency, status, on_b) = outcome.await.unwrap();
    let event = seen.expect("B's stream delivered the event");
    assert_eq!(event["name"], "workspace.created");
    assert_eq!(event["workspace_id"], ws["id"]);
    assert!(latency < Duration::from_secs(5), "delivered by NOTIFY, not by the minute-long poll: {latency:?}");
    assert_eq!((status, &on_b["id"]), (200, &ws["id"]));
}

#[test]
fn user_create_makes_the_first_administrator_who_can_sign_in() {
    let dir = temp_dir();
    let data = dir.join("data");
    let data = data.to_str().unwrap();
    let (ok, out, err) = run(
        &["user", "create", "--data-dir", data, "--email", "Root@Example.com", "--name", "Root"],
        &[("QUIRE_NEW_PASSWORD", "correct horse battery")],
    );
    assert!(ok, "{err}");
    let user: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((user["email"].as_str(), user["admin"].as_bool()), (Some("root@example.com"), Some(true)));
    let (ok, _, err) = run(
        &["user", "create", "--data-dir", data, "--email", "root@example.com", "--name", "Again"],
        &[("QUIRE_NEW_PASSWORD", "correct horse battery")],
    );
    assert!(!ok && err.contains("exists"), "{err}");
    let (ok, _, err) = run(
        &["user", "create", "--data-dir", data, "--email", "short@example.com", "--name", "Short"],
        &[("QUIRE_NEW_PASSWORD", "short")],
    );
    assert!(!ok && err.contains("password") && err.contains("8 characters"), "{err}");

    let server = Server::start(&["--data-dir", data], &[]);
    let login = r#"{"email":"root@example.com","password":"correct horse battery"}"#;
    let (status, body) = server.request("POST", "/api/v1/auth/login", Some(login));
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let (status, users) = server.request_as(Some(token), "GET", "/api/v1/users", None);
    assert_eq!((status, users.as_array().map(Vec::len)), (200, Some(1)));
    let (_, workspaces) = server.request_as(Some(token), "GET", "/api/v1/workspaces", None);
    assert_eq!(workspaces["items"][0]["name"], "Root's workspace", "the first account gets a workspace");
    server.stop();
    std::fs::remove_dir_all(dir).unwrap();
}

/// Out of the box, an edit becomes a version committed under the data directory, and
/// `quire history rebuild` makes a lost repository again from the database.
#[test]
fn edits_are_versioned_in_the_data_directory_and_a_lost_repository_is_rebuilt() {
    let dir = temp_dir();
    let data = dir.join("data");
    let data = data.to_str().unwrap();
    let server = Server::start(&["--data-dir", data], &[]);
    let signup = r#"{"email":"ada@example.com","password":"correct horse battery","name":"Ada"}"#;
    let (status, body) = server.request("POST", "/api/v1/auth/signup", Some(signup));
    assert_eq!(status, 201, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    let (_, workspaces) = server.request_as(Some(&token), "GET", "/api/v1/workspaces", None);
    let ws = workspaces["items"][0]["id"].as_str().unwrap().to_string();
    let (_, doc) = server.request_as(
        Some(&token),
        "POST",
        &format!("/api/v1/workspaces/{ws}/documents"),
        Some(r#"{"kind":"prd","title":"Plan"}"#),
    );
    let doc = doc["id"].as_str().unwrap().to_string();
    let content = r##"{"format":"markdown","content":"# Plan\n\n## Goals\n\nShip it.\n"}"##;
    let (status, _) =
        server.request_as(Some(&token), "PUT", &format!("/api/v1/documents/{doc}/content"), Some(content));
    assert_eq!(status, 204);
    let mut versions = Value::Null;
    for _ in 0..100 {
        versions = server.request_as(Some(&token), "GET", &format!("/api/v1/documents/{doc}/versions"), None).1;
        if versions["items"][0]["commit"].is_string() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(versions["items"][0]["version"], "1.0.0", "{versions}");
    let repo = Path::new(data).join("history").join(format!("{ws}.git"));
    assert!(repo.join("HEAD").exists(), "the repository lives in the data directory");
    server.stop();

    std::fs::remove_dir_all(&repo).unwrap();
    let (ok, out, err) = run(&["history", "rebuild", "--data-dir", data], &[]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("{ws}: 1 versions committed")), "{out}");
    assert!(repo.join("HEAD").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// Two processes sharing Redis share one budget per caller: five requests allowed in all,
/// whichever process serves them.
#[test]
fn rate_limits_hold_across_processes_through_redis() {
    let dir = temp_dir();
    let data = dir.to_str().unwrap();
    // A day-long window: a minute boundary falling mid-test must not reset the count.
    let envs = [("QUIRE_REDIS_URL", "redis://127.0.0.1:6379"), ("QUIRE_RATE_LIMIT_DEFAULT", "5/day")];
    // Both serve one SQLite file, so the account exists for both.
    let a = Server::start(&["--data-dir", data], &envs);
    let b = Server::start(&["--data-dir", data], &envs);
    let token = a.sign_in("ada@example.com");
    let t = Some(token.as_str());
    let (status, ready) = a.request_as(t, "GET", "/readyz", None);
    assert_eq!((status, ready["checks"]["redis"]["status"].as_str()), (200, Some("healthy")), "{ready}");
    let mut statuses = Vec::new();
    for server in [&a, &a, &a, &b, &b, &b, &a] {
        statuses.push(server.request_as(t, "GET", "/api/v1/workspaces", None).0);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    a.stop();
    b.stop();
    std::fs::remove_dir_all(dir).unwrap();
}

/// Secrets are sealed with a key from the data directory (or QUIRE_SECRET_KEYS); rotating
/// re-seals them and keeps tokens valid; a missing or wrong key stops the start with a reason.
#[test]
fn secrets_are_sealed_rotated_and_guarded() {
    let dir = temp_dir();
    let data = dir.join("data");
    let data = data.to_str().unwrap();
    let server = Server::start(&["--data-dir", data], &[]);
    let token = server.sign_in("ada@example.com");
    server.stop();
    let key_file = Path::new(data).join("secret-keys");
    let first = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(first.lines().count(), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    let (ok, out, err) = run(&["keys", "rotate", "--data-dir", data], &[]);
    // The token signing key and the key of signed image URLs.
    assert!(ok && out.contains("re-sealed 2 secrets"), "{out}{err}");
    let rotated = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(rotated.lines().count(), 2);
    assert!(rotated.ends_with(&first), "the old key stays to open older values");
    // After rotation the signing key is the same secret: the token still works.
    let server = Server::start(&["--data-dir", data], &[]);
    assert_eq!(server.request_as(Some(&token), "GET", "/api/v1/me", None).0, 200);
    server.stop();

    // Only the old key: the signing key was re-sealed with the new one, so start-up refuses.
    let (ok, _, err) = run(&["migrate", "--data-dir", data], &[]);
    assert!(ok, "{err}");
    let old_only = first.trim().to_string();
    let (ok, _, err) = run(
        &["user", "create", "--data-dir", data, "--email", "x@example.com", "--name", "X"],
        &[("QUIRE_SECRET_KEYS", &old_only), ("QUIRE_NEW_PASSWORD", "correct horse battery")],
    );
    assert!(!ok && err.contains("not configured") && err.contains("QUIRE_SECRET_KEYS"), "{err}");
    // The right id with other material.
    let current_id = rotated.lines().next().unwrap().split(':').next().unwrap();
    let impostor = format!("{current_id}:{}", "A".repeat(43) + "=");
    let (ok, _, err) = run(
        &["user", "create", "--data-dir", data, "--email", "x@example.com", "--name", "X"],
        &[("QUIRE_SECRET_KEYS", &impostor), ("QUIRE_NEW_PASSWORD", "correct horse battery")],
    );
    assert!(!ok && err.contains("does not open"), "{err}");
    let (ok, key, _) = run(&["keys", "generate"], &[]);
    assert!(ok && key.trim().starts_with('k') && key.contains(':'));
    std::fs::remove_dir_all(dir).unwrap();
}

/// Signing out on one process ends the session on every other at once: the revocation
/// travels as an event through PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_on_one_process_ends_the_session_on_another() {
    let url = quire_store::testing::empty_postgres_schema().await;
    let outcome = tokio::task::spawn_blocking(move || {
        let dir = temp_dir();
        let (a, b) = two_servers(&url, &dir);
        let token = a.sign_in("ada@example.com");
        let before = b.request_as(Some(&token), "GET", "/api/v1/me", None).0;
        let out = a.request_as(Some(&token), "POST", "/api/v1/auth/logout", None).0;
        let started = std::time::Instant::now();
        let mut after = 200;
        // A deadline for a loaded machine; how fast it travels is the benchmarks' business.
        while started.elapsed() < Duration::from_secs(30) {
            after = b.request_as(Some(&token), "GET", "/api/v1/me", None).0;
            if after == 401 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        a.stop();
        b.stop();
        std::fs::remove_dir_all(dir).unwrap();
        (before, out, after)
    });
    let (before, out, after) = outcome.await.unwrap();
    assert_eq!((before, out, after), (200, 204, 401), "refused on the other process once signed out");
}

/// A secret setting may be given sealed, so that the TOML file holds no plaintext.
#[test]
fn secret_settings_may_be_sealed() {
    use std::io::Write as _;
    let dir = temp_dir();
    let data = dir.join("data");
    let data = data.to_str().unwrap();
    let mut child = Command::new(BIN)
        .args(["keys", "seal", "metrics_token", "--data-dir", data])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"scrape-me\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let sealed = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(out.status.success() && sealed.starts_with("enc:v1:") && !sealed.contains("scrape-me"), "{sealed}");
    let file = dir.join("quire.toml");
    std::fs::write(&file, format!("data_dir = \"{data}\"\nmetrics_token = \"{sealed}\"\n")).unwrap();
    let server = Server::start(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(server.request("GET", "/metrics", None).0, 401);
    assert_eq!(server.request_as(Some("scrape-me"), "GET", "/metrics", None).0, 200);
    server.stop();
    let (ok, _, err) = run(&["keys", "seal", "addr", "--data-dir", data], &[]);
    assert!(!ok && err.contains("not a secret setting"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `kill -9` while clients edit: after a restart, everything any client had received from
/// the server (so everything the server had accepted) is in the document.
#[test]
fn nothing_accepted_is_lost_when_the_server_is_killed() {
    let node = node_clients();
    let dir = temp_dir();
    let data = dir.join("data");
    let data = data.to_str().unwrap();
    let server = Server::start(&["--data-dir", data], &[]);
    let token = server.sign_in("ada@example.com");
    let t = Some(token.as_str());
    let (_, ws) = server.request_as(t, "POST", "/api/v1/workspaces", Some(r#"{"name":"Crash"}"#));
    let path = format!("/api/v1/workspaces/{}/documents", ws["id"].as_str().unwrap());
    let (_, doc) = server.request_as(t, "POST", &path, Some(r#"{"kind":"prd","title":"Durable"}"#));
    let doc = doc["id"].as_str().unwrap().to_string();
    let url = format!("ws://{}/collab", server.addr);

    let mut clients = Command::new("node")
        .args(["crash.mjs", "edit", &url, &doc, &token])
        .current_dir(&node)
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    let (tx, rx) = mpsc::channel();
    let out = clients.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Let the edits flow, then kill the server without warning.
    std::thread::sleep(Duration::from_millis(1500));
    let mut server = server;
    Command::new("kill").args(["-KILL", &server.child.id().to_string()]).status().unwrap();
    let _ = server.child.wait();
    std::thread::sleep(Duration::from_millis(200));
    let mut seen = String::new();
    while let Ok(line) = rx.try_recv() {
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            seen = v["seen"].as_str().unwrap_or_default().to_string();
        }
    }
    let _ = clients.kill();
    let _ = clients.wait();
    drop(server);
    let tokens: Vec<&str> = seen.split(';').filter(|s| !s.is_empty()).collect();
    assert!(tokens.len() > 20, "the clients wrote for a while: {seen}");

    let server = Server::start(&["--data-dir", data], &[]);
    let url = format!("ws://{}/collab", server.addr);
    let read =
        Command::new("node").args(["crash.mjs", "read", &url, &doc, &token]).current_dir(&node).output().unwrap();
    let text: Value = serde_json::from_slice(read.stdout.trim_ascii())
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&read.stderr)));
    let text = text["text"].as_str().unwrap();
    for token in tokens {
        assert!(text.contains(&format!("{token};")), "{token} was relayed before the crash but is gone");
    }
    server.stop();
    std::fs::remove_dir_all(dir).unwrap();
}

/// The Node clients' folder (yjs and y-websocket from npm), installed on first use.
fn node_clients() -> PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let node = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/node");
    let _guard = INSTALL.lock().unwrap();
    if !node.join("node_modules/y-websocket").exists() {
        let ok =
            Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&node).status().unwrap().success();
        assert!(ok, "npm ci in tests/node failed");
    }
    node
}

/// Two `quire serve` processes sharing PostgreSQL and Redis, real y-websocket clients on
/// both: edits and presence cross between the processes live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_two_processes_edit_together_through_redis() {
    let url = quire_store::testing::empty_postgres_schema().await;
    let report = tokio::task::spawn_blocking(move || {
        let dir = temp_dir();
        let (a, b) = two_servers_with(&url, &dir, &[("QUIRE_REDIS_URL", "redis://127.0.0.1:6379")]);
        let token = a.sign_in("ada@example.com");
        let t = Some(token.as_str());
        let (_, ws) = a.request_as(t, "POST", "/api/v1/workspaces", Some(r#"{"name":"Cluster"}"#));
        let path = format!("/api/v1/workspaces/{}/documents", ws["id"].as_str().unwrap());
        let (_, doc) = a.request_as(t, "POST", &path, Some(r#"{"kind":"prd","title":"Shared"}"#));
        let doc = doc["id"].as_str().unwrap().to_string();
        let out = Command::new("node")
            .arg("two-nodes.mjs")
            .arg(format!("ws://{}/collab", a.addr))
            .arg(format!("ws://{}/collab", b.addr))
            .args([&doc, &token])
            .current_dir(node_clients())
            .output()
            .expect("node runs");
        // What the clients converged on is what both processes serve over REST.
        let content = format!("/api/v1/documents/{doc}/content?format=json");
        let texts = (a.request_as(t, "GET", &content, None).1, b.request_as(t, "GET", &content, None).1);
        a.stop();
        b.stop();
        std::fs::remove_dir_all(dir).unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}"))
            .unwrap_or_else(|_| panic!("no report: {stdout} {}", String::from_utf8_lossy(&out.stderr)));
        (report, texts)
    })
    .await
    .unwrap();
    let (report, (on_a, on_b)) = report;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["presence"], serde_json::json!(["one-a", "one-b", "two-a", "two-b"]));
    assert_eq!(report["after_leave"], serde_json::json!(["one-a", "one-b", "two-a"]));
    let converged: Vec<&str> = report["converged"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    for name in ["one-a", "one-b", "two-a", "two-b"] {
        // Each client's paragraphs arrive whole and in the order it wrote them.
        let mine: Vec<String> = converged.iter().filter(|p| p.starts_with(name)).map(|p| p.to_string()).collect();
        assert_eq!(mine, (0..10).map(|i| format!("{name}:{i}")).collect::<Vec<_>>());
    }
    // Both processes serve, over REST, exactly what the clients converged on.
    for served in [&on_a, &on_b] {
        let texts: Vec<&str> = served["content"]
            .as_array()
            .unwrap_or_else(|| panic!("{served}"))
            .iter()
            .map(|p| p["content"][0]["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, converged);
    }
}

/// The engine's proof: a `quire worker` process is killed (SIGKILL) in the middle of a
/// context; another worker process takes it over once the lease lapses, resumes after the
/// last recorded component (the template runs once), and completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_survives_its_worker_being_killed() {
    let url = quire_store::testing::empty_postgres_schema().await;
    let dir = temp_dir();
    let outcome = tokio::task::spawn_blocking(move || {
        let data_dir = dir.to_str().unwrap();
        let envs = [("QUIRE_DATABASE_URL", url.as_str()), ("QUIRE_JOB_LEASE_SECS", "3")];
        // The API process runs no workers: only the two worker processes do.
        let api = Server::start(&["--data-dir", data_dir, "--workers", "false"], &envs);
        let token = api.sign_in("ops@example.com");
        let worker = || {
            let mut w = Server::spawn(&["worker", "--data-dir", data_dir, "--worker-concurrency", "1"], &envs);
            w.wait_for("worker started");
            w
        };
        let mut first = worker();
        let body = r#"{"type": "article", "pipeline": ["template", "wait", "transformer"],
            "data": {"title": "Survivor", "tone": "technical", "wait_ms": 4000,
                     "generated_content": {"introduction": "Still here."}}}"#;
        let (status, ctx) = api.request_as(Some(&token), "POST", "/api/v1/contexts", Some(body));
        assert_eq!(status, 202, "{ctx}");
        let id = ctx["id"].as_str().unwrap().to_string();
        let path = format!("/api/v1/contexts/{id}");
        let poll = |until: &dyn Fn(&Value) -> bool| {
            for _ in 0..400 {
                let (_, c) = api.request_as(Some(&token), "GET", &path, None);
                if until(&c) {
                    return c;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!("context {id} never reached the state awaited");
        };
        poll(&|c| c["processing"]["current_component"] == "wait");
        first.child.kill().unwrap(); // SIGKILL: no goodbye, the lease just stops being renewed
        first.child.wait().unwrap();
        let _second = worker();
        let done = poll(&|c| c["status"] == "completed");
        let events = api.get_text(&token, &format!("/api/v1/contexts/{id}/events"));
        let (_, workers) = api.request_as(Some(&token), "GET", "/api/v1/workers", None);
        (done, events, workers)
    });
    let (done, events, workers) = outcome.await.unwrap();
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(done["processing"]["completed_components"], serde_json::json!(["template", "wait", "transformer"]));
    assert!(done["data"]["formatted_content"]["content"].as_str().unwrap().starts_with("# Survivor"));
    let events: Vec<Value> =
        events.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
    let step = |name: &str, state: &str| {
        events
            .iter()
            .filter(|e| e["kind"] == "component" && e["data"]["component"] == name && e["data"]["state"] == state)
            .map(|e| e["data"]["attempt"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(step("template", "completed"), [1], "the template ran once, on the first worker");
    assert_eq!(step("wait", "started"), [1, 2], "the wait was cut short by the kill and ran again");
    assert_eq!(step("transformer", "completed"), [2]);
    let claims: Vec<&Value> =
        events.iter().filter(|e| e["kind"] == "status" && e["data"]["status"] == "processing").collect();
    assert_eq!(claims.len(), 2);
    assert_ne!(claims[0]["data"]["worker"], claims[1]["data"]["worker"], "taken over by another worker");
    assert_eq!(events.last().unwrap()["data"]["status"], "completed");
    let live: Vec<&Value> = workers.as_array().unwrap().iter().filter(|w| w["alive"] == true).collect();
    assert_eq!(live.len(), 1, "the killed worker is no longer alive: {workers}");
}

/// A board build's worker is killed (SIGKILL) while the build hangs: the build's shell dies
/// with it, the lease lapses, another worker stops what the shell left running (its process
/// group, from the id the build left in the checkout) and builds it again to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_survives_its_worker_being_killed_and_nothing_of_it_is_left_running() {
    let url = quire_store::testing::empty_postgres_schema().await;
    let dir = temp_dir();
    let armbian = fake_armbian(&dir);
    let outcome = tokio::task::spawn_blocking(move || {
        let data_dir = dir.join("data");
        let (data_dir, armbian_dir) = (data_dir.to_str().unwrap(), armbian.to_str().unwrap());
        let envs = [("QUIRE_DATABASE_URL", url.as_str()), ("QUIRE_JOB_LEASE_SECS", "3")];
        let api = Server::start(&["--data-dir", data_dir, "--workers", "false", "--armbian-dir", armbian_dir], &envs);
        let token = api.sign_in("ops@example.com");
        let worker = || {
            let mut w = Server::spawn(&["worker", "--data-dir", data_dir, "--armbian-dir", armbian_dir], &envs);
            w.wait_for("worker started");
            w
        };
        let mut first = worker();
        let (_, ws) = api.request_as(Some(&token), "POST", "/api/v1/workspaces", Some(r#"{"name": "Boards"}"#));
        let ws = ws["id"].as_str().unwrap().to_string();
        let (_, doc) = api.request_as(
            Some(&token),
            "POST",
            &format!("/api/v1/workspaces/{ws}/documents"),
            Some(r#"{"kind": "board-config", "title": "SBC"}"#),
        );
        let doc = doc["id"].as_str().unwrap().to_string();
        let config = r#"{"BOARD": "quire-sbc", "BRANCH": "edge", "RELEASE": "noble", "QUIRE_FAKE_OUTCOME": "hang-once",
                         "QUIRE_FAKE_DELAY": "0.01"}"#;
        let (status, body) =
            api.request_as(Some(&token), "PATCH", &format!("/api/v1/documents/{doc}/content"), Some(config));
        assert_eq!(status, 204, "{body}");
        let (status, build) =
            api.request_as(Some(&token), "POST", &format!("/api/v1/documents/{doc}/builds"), Some("{}"));
        assert_eq!(status, 202, "{build}");
        let id = build["id"].as_str().unwrap().to_string();
        let poll = |what: &str, until: &dyn Fn(&Value) -> bool| {
            for _ in 0..600 {
                let (_, b) = api.request_as(Some(&token), "GET", &format!("/api/v1/builds/{id}"), None);
                if until(&b) {
                    return b;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!("build {id} never got to {what}");
        };
        // Hanging: the fake's sleep runs in the build's process group.
        poll("its hang", &|b| b["progress"]["message"].as_str().is_some_and(|m| m.contains("Waiting for the kernel")));
        let pgid: i32 =
            std::fs::read_to_string(armbian.join("output/.quire-build.pgid")).unwrap().trim().parse().unwrap();
        assert!(group_runs(pgid), "the build's group runs");
        first.child.kill().unwrap();
        first.child.wait().unwrap();
        let _second = worker();
        let done = poll("its end", &|b| matches!(b["status"].as_str(), Some("completed" | "failed")));
        let log = api.get_text(&token, &format!("/api/v1/builds/{id}/log?format=text"));
        (done, log, pgid)
    });
    let (done, log, pgid) = outcome.await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["attempts"], 2, "{done}");
    assert!(log.contains("— attempt 2 —") && log.contains("Done building image"), "{log}");
    assert!(!group_runs(pgid), "nothing of the first attempt's group is left running");
}

/// Whether a process of group `pgid` runs (a zombie waiting for its reaper does not).
fn group_runs(pgid: i32) -> bool {
    let out = Command::new("ps").args(["-eo", "pgid=,stat="]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().any(|l| {
        let mut cols = l.split_whitespace();
        cols.next().and_then(|g| g.parse::<i32>().ok()) == Some(pgid)
            && cols.next().is_some_and(|st| !st.starts_with('Z'))
    })
}

/// The models cache shared with the other suites (`$QUIRE_TEST_MODELS`, else
/// `~/.cache/quire-models`).
fn models_cache() -> PathBuf {
    std::env::var_os("QUIRE_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/quire-models"))
}

#[test]
fn local_models_are_fetched_listed_and_draft_out_of_the_box() {
    let cache = models_cache();
    let cache_arg = cache.to_str().unwrap();
    let (ok, out, err) = run(&["models", "fetch", "--models-dir", cache_arg], &[]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("SmolLM2-135M-Instruct.Q4_1.gguf") && out.contains("all-MiniLM-L6-v2"), "{out}");
    // Other models are fetched by name; a name Quire does not know is refused with the names.
    let (ok, out, err) = run(&["models", "fetch", "gemma-3-27b", "--models-dir", cache_arg], &[]);
    assert!(!ok, "{out}");
    assert!(err.contains("no model named 'gemma-3-27b'") && err.contains("gemma-3-270m"), "{err}");
    let (ok, out, _) = run(&["models", "list", "--models-dir", cache_arg], &[]);
    assert!(ok);
    let text = out.lines().find(|l| l.contains("SmolLM2")).unwrap_or_else(|| panic!("{out}"));
    assert!(text.starts_with("text") && text.contains("llama"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("embedding") && l.contains("all-MiniLM-L6-v2") && l.contains("bert")),
        "{out}"
    );

    let dir = temp_dir();
    let empty = dir.join("no-models");
    let (ok, out, _) = run(&["models", "list", "--models-dir", empty.to_str().unwrap()], &[]);
    assert!(ok && out.contains("run `quire models fetch`"), "{out}");
    let broken = dir.join("broken.gguf");
    std::fs::write(&broken, b"not a model").unwrap();
    let (ok, out, _) = run(
        &["models", "list", "--models-dir", empty.to_str().unwrap(), "--text-model", broken.to_str().unwrap()],
        &[],
    );
    assert!(ok && out.contains("cannot be used: is not a GGUF model"), "{out}");

    // A server over the models drafts with the local model, with no other setting.
    let data = dir.join("data");
    let server = Server::start(&["--data-dir", data.to_str().unwrap(), "--models-dir", cache_arg], &[]);
    let token = server.sign_in("ada@example.com");
    let (_, workspaces) = server.request_as(Some(&token), "GET", "/api/v1/workspaces", None);
    let ws = workspaces["items"][0]["id"].as_str().unwrap().to_string();
    let body =
        format!(r#"{{"workspace":"{ws}","messages":[{{"role":"user","content":"Name a colour."}}],"max_tokens":8}}"#);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    write!(
        stream,
        "POST /api/v1/ai/generate HTTP/1.0\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        server.addr,
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("event: chunk"), "{response}");
    let done = response.split("event: done\ndata: ").nth(1).unwrap_or_else(|| panic!("{response}"));
    let done: Value = serde_json::from_str(done.lines().next().unwrap()).unwrap();
    assert_eq!((&done["provider"], &done["model"]), (&json!("local"), &json!("SmolLM2-135M-Instruct.Q4_1")), "{done}");
    server.stop();
    std::fs::remove_dir_all(dir).unwrap();
}

/// The README's shell examples, run as written and in order against a fresh `quire serve`:
/// every `curl` must succeed (`--fail-with-body`), placeholders (`eyJ…`, `doc_…`, `ctx_…`)
/// are filled from what earlier commands printed, and streams (`curl -N`) are read for a
/// few seconds. The CLI's way to make the first account is the alternative to the API's,
/// so it runs against a data directory of its own.
#[test]
fn readme_examples_work_in_order() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```sh") => current = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.push(current.take().unwrap()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    assert!(blocks.len() >= 6, "the README's examples were not found");
    let dir = temp_dir();
    let mut api_script = String::new();
    for block in &blocks {
        if block.starts_with("cargo run -p quire -- serve") || block.starts_with("cargo test") {
            continue; // the set-up commands: this test is what they start
        }
        if let Some(args) = block.strip_prefix("cargo run -p quire -- ") {
            let data = dir.join("cli-data");
            let mut cmd = Command::new(BIN);
            cmd.args(args.split_whitespace())
                .env("QUIRE_DATA_DIR", &data)
                .env("QUIRE_NEW_PASSWORD", "correct horse battery");
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "`{}`: {}", block.trim(), String::from_utf8_lossy(&out.stderr));
            continue;
        }
        api_script.push_str(block);
    }
    let data = dir.join("data");
    let server = Server::start(&["--data-dir", data.to_str().unwrap()], &[]);
    // Placeholders become the last value printed with that beginning.
    let mut script = String::new();
    let mut rest = api_script.replace("127.0.0.1:7420", &server.addr);
    while let Some(at) = rest.find('…') {
        let before = &rest[..at];
        let start = before.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
        let prefix = &before[start..];
        script.push_str(&before[..start]);
        if prefix.is_empty() {
            script.push('…'); // an ellipsis in a string, not a placeholder
        } else {
            script.push_str(&format!("$(last {prefix})"));
        }
        rest = rest[at + '…'.len_utf8()..].to_string();
    }
    script.push_str(&rest);
    let out_file = dir.join("out.txt");
    let prelude = r#"set -eu
curl() {
  rc=0
  stream=0
  for a in "$@"; do [ "$a" = "-N" ] && stream=1; done
  if [ $stream = 1 ]; then limit=3; else limit=30; fi
  command curl -sS --fail-with-body --max-time $limit "$@" >> "$OUT" || rc=$?
  echo >> "$OUT"
  # A stream is cut off by --max-time (28): that is how it ends here.
  if [ $rc -ne 0 ] && ! { [ $rc -eq 28 ] && [ $stream = 1 ]; }; then
    echo "curl $* failed with $rc; it printed:" >&2
    tail -c 3000 "$OUT" >&2
    exit 1
  fi
}
last() { grep -o "$1[A-Za-z0-9_.-]*" "$OUT" | tail -n 1; }
"#;
    // Files the examples write land in the test's own folder.
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .current_dir(&work)
        .env("OUT", &out_file)
        .output()
        .expect("bash and curl run the README's examples");
    let printed = std::fs::read_to_string(&out_file).unwrap_or_default();
    assert!(out.status.success(), "{}\n--- script:\n{script}", String::from_utf8_lossy(&out.stderr));
    // What the examples say they do, they did.
    assert!(printed.contains("\"title\":\"Checkout redesign\""), "{printed}");
    assert!(printed.contains("## Goals\n\n- Pay in one step"), "the content written is read back: {printed}");
    assert!(printed.contains("event: prd.created"), "the event stream showed the document: {printed}");
    assert!(printed.contains("\"status\":\"completed\""), "the pipeline's context completed: {printed}");
    assert!(printed.contains("event: done"), "the AI draft streamed to its end: {printed}");
    assert!(
        printed.contains("rock-5b does not build the 'legacy' kernel branch"),
        "the configuration's problem is named: {printed}"
    );
    assert!(
        printed.contains("\"path\":\"customize-image.sh\"") && printed.contains("\"mode\":\"755\""),
        "the configuration's script was kept as a program: {printed}"
    );
    assert!(
        printed.contains(r#"{"data":{"boardConfig":{"settings":{"BOARD":"rock-5b""#)
            && printed.contains(r#""files":[{"path":"customize-image.sh","mode":"755"}]"#),
        "GraphQL answered about the configuration: {printed}"
    );
    server.stop();
    std::fs::remove_dir_all(dir).unwrap();
}
