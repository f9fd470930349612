//! Version history over HTTP, on SQLite and PostgreSQL: edits become versions after the
//! debounce (major, minor, patch or none), each a commit and an event; diffs, restores, names,
//! the changelog, archived versions, and a lost repository rebuilt.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{Api, assert_error};
use quire_history::repo::Repo;
use quire_store::testing::Backend;
use serde_json::{Value, json};

quire_store::for_each_backend!(
    edits_become_versions_with_bumps_messages_commits_and_events,
    versions_are_diffed_restored_named_and_listed_in_a_changelog,
    restoring_any_version_then_diffing_it_is_empty,
    archived_versions_stay_readable_and_a_lost_repository_is_rebuilt,
    history_is_pushed_to_a_remote_and_a_failing_push_is_retried_and_shown,
    history_is_pushed_over_http_with_sealed_credentials,
    history_remotes_cannot_reach_into_the_machine,
    each_section_says_who_last_changed_it,
);

async fn each_section_says_who_last_changed_it(b: Backend) {
    let s = setup(b, 50).await;
    s.version(V1).await;
    s.version(&format!("{V1}\n## Risks\n\nFraud may rise.\n")).await;
    s.version(&format!("{V1}\n## Risks\n\nFraud may rise a lot.\n")).await;
    let r = s.api.get(&format!("/api/v1/documents/{}/sections", s.doc)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let by: Vec<(&str, &str)> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["title"].as_str().unwrap(), x["version"].as_str().unwrap()))
        .collect();
    assert_eq!(by, [("Checkout", "1.0.0"), ("Problem", "1.0.0"), ("Risks", "2.0.1")], "{}", r.body);
    assert_eq!(r.body[2]["authors"][0]["email"], "admin@example.com");
    assert_eq!(r.body[0]["settled"], false, "fewer versions than the depth: all were read");
}

struct Setup {
    api: Api,
    ws: String,
    doc: String,
    _worker: quire_jobs::WorkerHandle,
    _dir: tempfile::TempDir,
}

/// The tests' git servers listen on loopback, which pushes must be allowed to reach.
async fn setup(b: Backend, keep: i64) -> Setup {
    setup_with(b, keep, quire_net::Outbound::parse("127.0.0.1").unwrap()).await
}

async fn setup_with(b: Backend, keep: i64, outbound: quire_net::Outbound) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::relaxed();
    config.outbound = outbound;
    config.jobs.poll_interval = Duration::from_millis(20);
    config.history.debounce = Duration::from_millis(50);
    config.history.keep = keep;
    config.history.dir = dir.path().to_path_buf();
    config.jobs.retry = quire_jobs::RetryPolicy { base: Duration::from_millis(20), max: Duration::from_millis(100) };
    let api = Api::with(b, Default::default(), config).await;
    let ws = api.post("/api/v1/workspaces", json!({"name": "Product"})).await.body["id"].as_str().unwrap().to_string();
    let doc =
        api.post(&format!("/api/v1/workspaces/{ws}/documents"), json!({"kind": "prd", "title": "Checkout"})).await;
    let doc = doc.body["id"].as_str().unwrap().to_string();
    let worker = quire_jobs::WorkerConfig {
        queues: vec!["default".into(), quire_app::history::QUEUE.into()],
        schedules: false,
        grace: Duration::from_millis(200),
        ..Default::default()
    };
    let worker = api.app.engine().start_worker(worker, api.app.shutdown_signal()).await.unwrap();
    Setup { api, ws, doc, _worker: worker, _dir: dir }
}

impl Setup {
    async fn write(&self, markdown: &str) {
        let body = json!({"format": "markdown", "content": markdown});
        let r = self.api.call(Method::PUT, &format!("/api/v1/documents/{}/content", self.doc), Some(body), &[]).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    }

    async fn versions(&self) -> Vec<Value> {
        let r = self.api.get(&format!("/api/v1/documents/{}/versions", self.doc)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["items"].as_array().unwrap().clone()
    }

    /// The newest version once there are `n` and it is committed (the commit follows the
    /// version's record by a moment).
    async fn until_versions(&self, n: usize) -> Value {
        for _ in 0..500 {
            let v = self.versions().await;
            if v.len() >= n && v[0]["commit"].is_string() {
                assert_eq!(v.len(), n, "one version per settled change: {v:?}");
                return v[0].clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never {n} versions: {:?}", self.versions().await);
    }

    /// How many version requests of the workspace have run to the end (whether or not they
    /// made a version): the positive signal a check that nothing happened waits for.
    async fn requests_done(&self) -> usize {
        let query = quire_core::ContextQuery {
            document: None,
            workspace: Some(self.ws.clone()),
            status: Some(quire_core::ContextStatus::Completed),
            kind: Some("history".into()),
            page: quire_core::PageRequest::parse(None, "-created_at", "type", Some(100), None, &Default::default())
                .unwrap(),
        };
        self.api.app.store().list_contexts(&quire_core::Principal::System, &query).await.unwrap().items.len()
    }

    /// Waits until `n` version requests have run to the end.
    async fn until_requests_done(&self, n: usize) {
        for _ in 0..500 {
            if self.requests_done().await >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never {n} version requests done: {}", self.requests_done().await);
    }

    /// Writes and waits for the version it makes.
    async fn version(&self, markdown: &str) -> Value {
        let n = self.versions().await.len();
        self.write(markdown).await;
        self.until_versions(n + 1).await
    }

    async fn diff(&self, from: &str, to: &str) -> Value {
        let r = self.api.get(&format!("/api/v1/documents/{}/diff?from={from}&to={to}", self.doc)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }
}

const V1: &str = "# Checkout\n\n## Problem\n\nPaying takes six steps and half the users give up.\n";

async fn edits_become_versions_with_bumps_messages_commits_and_events(b: Backend) {
    let s = setup(b, 50).await;
    let last_event = s.api.app.store().last_event_id().await.unwrap();
    let first = s.version(V1).await;
    assert_eq!(
        (&first["version"], &first["bump"], &first["message"]),
        (&json!("1.0.0"), &json!("major"), &json!("First version"))
    );
    assert_eq!(first["authors"][0]["email"], "admin@example.com");
    assert_eq!(first["commit"].as_str().map(str::len), Some(40), "{first}");

    let v2 = format!("{V1}\n## Risks\n\nFraud may rise.\n");
    let second = s.version(&v2).await;
    assert_eq!((&second["version"], &second["message"]), (&json!("2.0.0"), &json!("Added section 'Risks'")));
    let typo = v2.replace("six steps", "6 steps");
    let third = s.version(&typo).await;
    assert_eq!(
        (&third["version"], &third["bump"], &third["message"]),
        (&json!("2.0.1"), &json!("patch"), &json!("Edited 'Problem'"))
    );
    let more = typo.replace("Fraud may rise.", "Fraud may rise; card testing attacks grow with one-click payment.");
    let fourth = s.version(&more).await;
    assert_eq!((&fourth["version"], &fourth["bump"]), (&json!("2.1.0"), &json!("minor")));

    // The same content again makes nothing, however often it is written: the document
    // does not change at all (its state vector is the same), so there is no edit to version.
    let state = || async {
        use yrs::{ReadTxn, Transact};
        s.api.app.collab().read(&s.doc, |d| d.transact().state_vector()).await.unwrap()
    };
    let before = state().await;
    s.write(&more).await;
    s.write(&more).await;
    assert_eq!(state().await, before, "writing the same content changed the document");
    assert_eq!(s.versions().await.len(), 4);

    // Each version is a commit of the document's file, and an event.
    let repo = Repo::open_or_init(&s.api.app.history().repo_path(&s.ws)).unwrap();
    let log = repo.log(10).unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(log[0].1, "Checkout 2.1.0: Edited 'Risks'");
    assert_eq!(log[0].0, fourth["commit"].as_str().unwrap());
    let file = repo.read(first["commit"].as_str().unwrap(), &format!("documents/{}.md", s.doc)).unwrap().unwrap();
    assert_eq!(String::from_utf8(file).unwrap(), V1);
    let filter = quire_core::EventFilter { workspace_id: None, names: vec!["prd.version.created".into()] };
    let events =
        s.api.app.store().events_after(&quire_core::Principal::System, last_event, &filter, 100).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.data["version"].as_str().unwrap()).collect::<Vec<_>>(),
        ["1.0.0", "2.0.0", "2.0.1", "2.1.0"]
    );
    // Each event names the commit its version became.
    let commits: Vec<&str> = log.iter().rev().map(|(hash, _)| hash.as_str()).collect();
    assert_eq!(events.iter().map(|e| e.data["commit"].as_str().unwrap_or("none")).collect::<Vec<_>>(), commits);
    // And git.commit.created says the same of the repository.
    let filter = quire_core::EventFilter { workspace_id: None, names: vec!["git.commit.created".into()] };
    let made = s.api.app.store().events_after(&quire_core::Principal::System, last_event, &filter, 100).await.unwrap();
    assert_eq!(made.iter().map(|e| e.data["commit"].as_str().unwrap()).collect::<Vec<_>>(), commits);
    assert_eq!(made[0].document_id.as_deref(), Some(s.doc.as_str()));
    assert_eq!(
        (&made[0].data["version"], &made[0].data["message"]),
        (&events[0].data["version"], &events[0].data["message"])
    );
}

async fn versions_are_diffed_restored_named_and_listed_in_a_changelog(b: Backend) {
    let s = setup(b, 50).await;
    s.version(V1).await;
    let v2 = format!("{V1}\n## Risks\n\nFraud may rise.\n");
    s.version(&v2).await;
    let d = s.diff("1.0.0", "2.0.0").await;
    assert!(d["unified"].as_str().unwrap().contains("+## Risks"), "{d}");
    assert_eq!(d["sections"], json!([{"section": "Risks", "change": "added", "diff": d["sections"][0]["diff"]}]));
    let same = s.diff("current", "current").await;
    assert_eq!((&same["unified"], &same["sections"]), (&json!(""), &json!([])));
    assert_eq!(s.diff("2.0.0", "current").await["unified"], "", "current is 2.0.0");

    let r = s.api.post(&format!("/api/v1/documents/{}/versions/1.0.0/restore", s.doc), json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!((&r.body["version"], &r.body["message"]), (&json!("3.0.0"), &json!("Restored version 1.0.0")));
    assert_eq!(s.diff("1.0.0", "current").await["unified"], "", "the content is 1.0.0's again");
    let again = s.api.post(&format!("/api/v1/documents/{}/versions/1.0.0/restore", s.doc), json!({})).await;
    assert_error(&again, StatusCode::CONFLICT, "conflict");
    // The restore's edit asks for a version like any edit (after the two writes' requests).
    s.until_requests_done(3).await;
    assert_eq!(s.versions().await.len(), 3, "the restore's own edit makes no second version");

    let path = format!("/api/v1/documents/{}/versions/1.0.0", s.doc);
    let named = s.api.call(Method::PATCH, &path, Some(json!({"name": "Kickoff"})), &[]).await;
    assert_eq!((named.status, &named.body["name"]), (StatusCode::OK, &json!("Kickoff")));
    let one = s.api.get(&path).await;
    assert_eq!((&one.body["version"]["name"], &one.body["content"]), (&json!("Kickoff"), &json!(V1)));
    let log = s.api.get(&format!("/api/v1/documents/{}/changelog", s.doc)).await;
    let md = log.body.as_str().unwrap();
    assert!(md.starts_with("# Changelog: Checkout\n\n## 3.0.0 — "), "{md}");
    assert!(md.contains(" — Kickoff\n\n- First version (admin)\n"), "{md}");
    assert!(md.find("## 3.0.0").unwrap() < md.find("## 2.0.0").unwrap());

    // Refusals.
    for (path, status, code) in [
        (format!("/api/v1/documents/{}/versions/1.2", s.doc), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        (format!("/api/v1/documents/{}/versions/9.9.9", s.doc), StatusCode::NOT_FOUND, "not_found"),
        (format!("/api/v1/documents/{}/diff?from=1.0.0&to=8.0.0", s.doc), StatusCode::NOT_FOUND, "not_found"),
        (format!("/api/v1/documents/{}/versions?cursor=abc", s.doc), StatusCode::BAD_REQUEST, "bad_cursor"),
        (format!("/api/v1/documents/{}/versions?limit=0", s.doc), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ("/api/v1/documents/doc_missing/versions".to_string(), StatusCode::NOT_FOUND, "not_found"),
    ] {
        let r = s.api.get(&path).await;
        assert_error(&r, status, code);
    }
    let long = s.api.call(Method::PATCH, &path, Some(json!({"name": "x".repeat(101)})), &[]).await;
    assert_error(&long, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (viewer, token, _) = s.api.signup("viewer@example.com").await;
    let r = s
        .api
        .call(
            Method::PUT,
            &format!("/api/v1/workspaces/{}/members/{viewer}", s.ws),
            Some(json!({"role": "viewer"})),
            &[],
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let r = s.api.call_as(Some(&token), Method::GET, &format!("/api/v1/documents/{}/versions", s.doc), None, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "viewers read the history");
    let r = s
        .api
        .call_as(Some(&token), Method::POST, &format!("/api/v1/documents/{}/versions/2.0.0/restore", s.doc), None, &[])
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    // Pages.
    let page = s.api.get(&format!("/api/v1/documents/{}/versions?limit=2", s.doc)).await;
    let next = page.body["next_cursor"].as_str().unwrap();
    let rest = s.api.get(&format!("/api/v1/documents/{}/versions?limit=2&cursor={next}", s.doc)).await;
    assert_eq!(rest.body["items"][0]["version"], "1.0.0");
    assert_eq!(rest.body["next_cursor"], Value::Null);
}

async fn restoring_any_version_then_diffing_it_is_empty(b: Backend) {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    let s = setup(b, 50).await;
    // Documents generated as the property tests of quire-history do: headings, paragraphs
    // and lists in any mix.
    let block = prop_oneof![
        "[A-Z][a-z]{2,9}".prop_map(|h| format!("## {h}\n")),
        "[A-Z][a-z ]{3,40}[a-z]\\.".prop_map(|p| format!("{p}\n")),
        prop::collection::vec("[a-z][a-z ]{1,20}[a-z]", 1..4)
            .prop_map(|items| items.iter().map(|i| format!("- {i}\n")).collect::<String>()),
    ];
    let doc = prop::collection::vec(block, 1..8).prop_map(|blocks| format!("# Checkout\n\n{}", blocks.join("\n")));
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut made = Vec::new();
    let mut last = String::new();
    for _ in 0..6 {
        let text = doc.new_tree(&mut runner).unwrap().current();
        if text == last {
            continue;
        }
        let (n, done) = (s.versions().await.len(), s.requests_done().await);
        s.write(&text).await;
        s.until_requests_done(done + 1).await;
        last = text;
        let now = s.versions().await;
        if now.len() > n {
            made.push(now[0]["version"].as_str().unwrap().to_string());
        }
    }
    assert!(made.len() >= 3, "generated documents differ: {made:?}");
    for v in made.iter().rev().chain(made.iter()) {
        let r = s.api.post(&format!("/api/v1/documents/{}/versions/{v}/restore", s.doc), json!({})).await;
        assert!(r.status == StatusCode::CREATED || r.status == StatusCode::CONFLICT, "{v}: {}", r.body);
        let d = s.diff(v, "current").await;
        assert_eq!((&d["unified"], &d["sections"]), (&json!(""), &json!([])), "restored {v}");
    }
}

async fn archived_versions_stay_readable_and_a_lost_repository_is_rebuilt(b: Backend) {
    let s = setup(b, 2).await;
    let mut texts = Vec::new();
    for i in 1..=4 {
        let text = format!("# Checkout\n\n## Part {i}\n\nText of part {i}.\n");
        s.version(&text).await;
        texts.push(text);
    }
    let all = s.versions().await;
    let archived: Vec<bool> = all.iter().map(|v| v["archived"].as_bool().unwrap()).collect();
    assert_eq!(archived, [false, false, true, true], "past the two kept whole, compressed");
    let oldest = s.api.get(&format!("/api/v1/documents/{}/versions/1.0.0", s.doc)).await;
    assert_eq!(oldest.body["content"], json!(texts[0]), "read back whole");
    assert!(s.diff("1.0.0", "4.0.0").await["unified"].as_str().unwrap().contains("+## Part 4"));

    // The repository is lost: rebuilt from the database, every version a commit again.
    let path = s.api.app.history().repo_path(&s.ws);
    std::fs::remove_dir_all(&path).unwrap();
    assert!(!s.api.app.history().has_repo(&s.ws));
    assert_eq!(s.api.app.history().rebuild(&s.ws).await.unwrap(), 4);
    let repo = Repo::open_or_init(&path).unwrap();
    let log = repo.log(10).unwrap();
    assert_eq!(log.len(), 4);
    let listed = s.versions().await;
    assert_eq!(listed[0]["commit"], json!(log[0].0), "versions point at the new commits");
    let file = repo.read(listed[3]["commit"].as_str().unwrap(), &format!("documents/{}.md", s.doc)).unwrap().unwrap();
    assert_eq!(String::from_utf8(file).unwrap(), texts[0]);
    // Editing goes on in the rebuilt repository.
    s.version("# Checkout\n\n## Part 5\n\nText.\n").await;
    assert_eq!(repo.log(10).unwrap().len(), 5);
}

async fn history_is_pushed_to_a_remote_and_a_failing_push_is_retried_and_shown(b: Backend) {
    let s = setup(b, 50).await;
    let remote = s._dir.path().join("remote.git");
    Repo::open_or_init(&remote).unwrap();
    let path = format!("/api/v1/workspaces/{}/history/remote", s.ws);
    let bad = s.api.call(Method::PUT, &path, Some(json!({"url": "relative/repo.git"})), &[]).await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let r = s.api.call(Method::PUT, &path, Some(json!({"url": remote.to_str().unwrap()})), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let head = |p: &std::path::Path| Repo::open_or_init(p).ok().and_then(|r| r.head().ok().flatten());
    let first = s.version(V1).await;
    let mut pushed = false;
    for _ in 0..1000 {
        // The push is recorded a moment after the remote has it.
        if head(&remote).as_deref() == first["commit"].as_str()
            && s.api.get(&path).await.body["last_push"]["ok"] == true
        {
            pushed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(pushed, "the version reached the remote, and the push was recorded");

    // The remote breaks: edits go on, the push fails, is retried, and /readyz says so.
    std::fs::remove_dir_all(&remote).unwrap();
    std::fs::write(&remote, "not a repository").unwrap();
    let second = s.version(&format!("{V1}\n## Risks\n\nFraud.\n")).await;
    let mut shown = Value::Null;
    for _ in 0..1000 {
        let ready = s.api.get("/readyz").await.body;
        if ready["checks"]["history.push"]["status"] == "down" {
            shown = ready;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(shown["status"], "degraded", "{shown}");
    assert!(shown["checks"]["history.push"]["error"].as_str().unwrap().starts_with(&format!("{}: ", s.ws)), "{shown}");
    assert_eq!(s.api.get(&path).await.body["last_push"]["ok"], false);

    // Mended, the retry gets through and readiness is whole again.
    std::fs::remove_file(&remote).unwrap();
    Repo::open_or_init(&remote).unwrap();
    let mut mended = false;
    for _ in 0..1000 {
        let ready = s.api.get("/readyz").await.body;
        if head(&remote).as_deref() == second["commit"].as_str() && ready["checks"].get("history.push").is_none() {
            mended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(mended, "the retried push reached the remote");
    let r = s.api.call(Method::DELETE, &path, None, &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        s.api.get(&path).await.body,
        json!({"url": null, "username": null, "has_password": false, "last_push": null})
    );
}

/// Polls `check` until it holds (about 20 s at most).
async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..1000 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn history_is_pushed_over_http_with_sealed_credentials(b: Backend) {
    let s = setup(b, 50).await;
    let served = s._dir.path().join("served");
    Repo::open_or_init(&served.join("team.git")).unwrap();
    let server = quire_history::testing::GitHttpServer::start(&served, Some(("ada", "tok-right"))).unwrap();
    let url = format!("{}/team.git", server.url);
    let path = format!("/api/v1/workspaces/{}/history/remote", s.ws);
    let put = |body: Value| s.api.call(Method::PUT, &path, Some(body), &[]);

    for (body, field) in [
        (json!({"url": "git@github.com:team/plans.git"}), "url"),
        (json!({"url": url, "username": "ada"}), "password"),
        (json!({"url": "/srv/plans.git", "password": "x"}), "password"),
    ] {
        let r = put(body).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
        assert!(r.body.to_string().contains(field), "{}", r.body);
    }
    let r = put(json!({"url": url, "username": "ada", "password": "tok-wrong"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["url"], json!(url));
    assert_eq!((&r.body["username"], &r.body["has_password"]), (&json!("ada"), &json!(true)));
    assert!(!r.body.to_string().contains("tok-wrong"), "the password is never shown: {}", r.body);
    let stored = s.api.app.store().setting(&format!("history.remote.{}", s.ws)).await.unwrap().unwrap();
    assert!(stored.starts_with("enc:v1:") && !stored.contains("tok-"), "sealed at rest: {stored}");

    // Refused credentials: the version is made, the push fails and /readyz says why.
    let first = s.version(V1).await;
    let remote = served.join("team.git");
    let head = || Repo::open_or_init(&remote).unwrap().head().unwrap();
    let mut shown = Value::Null;
    assert!(
        eventually(async || {
            shown = s.api.get("/readyz").await.body;
            shown["checks"]["history.push"]["status"] == "down"
        })
        .await,
        "{shown}"
    );
    let error = shown["checks"]["history.push"]["error"].as_str().unwrap();
    assert!(error.contains("401") && !error.contains("tok-"), "{error}");
    assert!(server.refused() >= 1 && server.pushes() == 0);
    assert_eq!(head(), None);

    // Credentials written into the URL are taken out of it and sealed; the retry gets through.
    let with_token = url.replacen("http://", "http://ada:tok-right@", 1);
    let r = put(json!({"url": with_token})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((&r.body["url"], &r.body["username"]), (&json!(url), &json!("ada")));
    assert!(
        eventually(async || head().as_deref() == first["commit"].as_str()
            && s.api.get("/readyz").await.body["checks"].get("history.push").is_none())
        .await,
        "the push with the right credentials reached the server"
    );
    let second = s.version(&format!("{V1}\n## Risks\n\nFraud.\n")).await;
    assert!(eventually(async || head().as_deref() == second["commit"].as_str()).await, "every version is pushed");
    assert!(server.pushes() >= 2);
}

/// Two nodes of one instance (one PostgreSQL database, Redis between them): Ada edits on the
/// first and Bob on the second within one debounce. Each node hears of the other's edits, so
/// the one version waits for both and names them both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_names_its_authors_from_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::relaxed();
    config.redis_url = Some("redis://127.0.0.1:6379".into());
    config.jobs.poll_interval = Duration::from_millis(20);
    config.history.debounce = Duration::from_millis(300);
    config.history.dir = dir.path().to_path_buf();
    let one = Api::with(Backend::Postgres, Default::default(), config.clone()).await;
    let two = one.another_node(config).await;
    let ws = one.post("/api/v1/workspaces", json!({"name": "Product"})).await.body["id"].as_str().unwrap().to_string();
    let doc =
        one.post(&format!("/api/v1/workspaces/{ws}/documents"), json!({"kind": "prd", "title": "Checkout"})).await;
    let doc = doc.body["id"].as_str().unwrap().to_string();
    let (bob, bob_token, _) = one.signup("bob@example.com").await;
    let member = Some(json!({"role": "editor"}));
    let r = one.call(Method::PUT, &format!("/api/v1/workspaces/{ws}/members/{bob}"), member, &[]).await;
    assert!(r.status.is_success(), "{}", r.body);
    let worker = quire_jobs::WorkerConfig {
        queues: vec![quire_app::history::QUEUE.into()],
        schedules: false,
        grace: Duration::from_millis(200),
        ..Default::default()
    };
    let _worker = one.app.engine().start_worker(worker, one.app.shutdown_signal()).await.unwrap();

    let content = format!("/api/v1/documents/{doc}/content");
    let body = |text: &str| Some(json!({"format": "markdown", "content": text}));
    let r = one.call(Method::PUT, &content, body(V1), &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let both = format!("{V1}\n## Risks\n\nFraud.\n");
    let r = two.call_as(Some(&bob_token), Method::PUT, &content, body(&both), &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

    let versions = format!("/api/v1/documents/{doc}/versions");
    for _ in 0..500 {
        if one.get(&versions).await.body["items"][0]["commit"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Both nodes asked for the version; the second found nothing new.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let listed = one.get(&versions).await.body;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "one version for one settled change: {listed}");
    let emails: Vec<&str> =
        items[0]["authors"].as_array().unwrap().iter().filter_map(|a| a["email"].as_str()).collect();
    assert_eq!(emails, ["admin@example.com", "bob@example.com"], "{listed}");
    let at = one.get(&format!("{versions}/{}", items[0]["version"].as_str().unwrap())).await;
    assert_eq!(at.body["content"], json!(both));
}

/// A workspace admin (not an instance admin) cannot point the history remote into the
/// machine: no paths (another workspace's repository is one), no loopback, private or
/// metadata addresses written out, and a name that resolves to loopback is refused at
/// every push, so the server behind it never hears from Quire. Anonymous readiness
/// checks name no workspace and no remote.
async fn history_remotes_cannot_reach_into_the_machine(b: Backend) {
    let s = setup_with(b, 50, quire_net::Outbound::public_only()).await;
    let (uid, mallory, _) = s.api.signup("mallory@example.com").await;
    let member = format!("/api/v1/workspaces/{}/members/{uid}", s.ws);
    let r = s.api.call(Method::PUT, &member, Some(json!({"role": "admin"})), &[]).await;
    assert!(r.status.is_success(), "{}", r.body);
    let path = format!("/api/v1/workspaces/{}/history/remote", s.ws);
    let put = |body: Value| s.api.call_as(Some(&mallory), Method::PUT, &path, Some(body), &[]);

    let other = s.api.app.history().repo_path("wsp_other");
    for url in [other.to_str().unwrap().to_string(), format!("file://{}", other.display())] {
        let r = put(json!({"url": url})).await;
        assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    }
    for url in [
        "http://127.0.0.1:6379/x.git",
        "http://[::1]:6379/x.git",
        "http://169.254.169.254/latest/meta-data.git",
        "http://10.0.0.5/team.git",
        "http://2130706433/x.git",
    ] {
        let r = put(json!({"url": url})).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
        assert!(r.body["error"]["message"].as_str().unwrap().contains("--outbound-allow"), "{url}: {}", r.body);
    }

    let served = s._dir.path().join("served");
    Repo::open_or_init(&served.join("team.git")).unwrap();
    let server = quire_history::testing::GitHttpServer::start(&served, None).unwrap();
    let by_name = format!("{}/team.git", server.url.replace("127.0.0.1", "localhost"));
    let r = put(json!({"url": by_name})).await;
    assert_eq!(r.status, StatusCode::OK, "a name is resolved when pushing: {}", r.body);
    s.version(V1).await;
    let mut last = Value::Null;
    assert!(
        eventually(async || {
            last = s.api.call_as(Some(&mallory), Method::GET, &path, None, &[]).await.body;
            last["last_push"]["ok"] == false
        })
        .await,
        "{last}"
    );
    assert!(last["last_push"]["error"].as_str().unwrap().contains("--outbound-allow"), "{last}");
    assert_eq!((server.pushes(), server.refused()), (0, 0), "nothing reached the server");

    let anonymous = s.api.call_as(None, Method::GET, "/readyz", None, &[]).await;
    assert_eq!(anonymous.body, json!({"status": "degraded"}));
    let as_member = s.api.call_as(Some(&mallory), Method::GET, "/readyz", None, &[]).await;
    assert_eq!(as_member.body, json!({"status": "degraded"}), "workspace admins see no other tenant's remote");
    let as_admin = s.api.get("/readyz").await;
    assert!(as_admin.body["checks"]["history.push"]["error"].as_str().unwrap().contains(&s.ws), "{}", as_admin.body);
}
