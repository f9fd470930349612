//! Version history: versions committed per second, and listing and diffing a document with
//! many versions.
//!
//! `cargo run --release -p quire-bench --bin history [-- N]` (default 10000), on SQLite and on
//! the PostgreSQL `QUIRE_TEST_DATABASE_URL` names (default: local `test`).
//!
//! * Versions made per second: 1,000 edits of one of 50 sections of a PRD (a file of about
//!   6 KB), each written into the live document and then made a version the whole way a real
//!   one is — rendered, judged against the last, recorded with its event, committed, versions
//!   past 50 compressed — one after another, as the one history writer makes them. Only the
//!   version's making is timed, not the edit.
//! * A document with N versions: N versions recorded, then the repository rebuilt from them
//!   (every version committed again: the git writer's own rate), then listing and diffing.

use std::time::{Duration, Instant};

use quire_core::{DocumentKind, NewDocument, NewWorkspace, PresenceUser, Principal};
use quire_history::{Format, diff};
use quire_store::testing::Backend;

fn markdown(version: usize) -> String {
    let mut s = String::from("# Checkout\n");
    for section in 0..50 {
        s.push_str(&format!("\n## Section {section}\n\n"));
        // Section `version % 50` carries the version's own words; the others their last.
        let last_edit = if section <= version { version - (version - section) % 50 } else { 0 };
        s.push_str(&format!("This section says what part {section} needs, as of edit {last_edit}. "));
        s.push_str("It goes on for a sentence or two so that the file is the size of a real PRD.\n");
    }
    s
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn run(backend: Backend, n: usize) {
    let t = backend.open(Default::default()).await;
    let store = t.store.clone();
    let ws = store.create_workspace(&Principal::System, NewWorkspace { name: "Bench".into(), ..Default::default() });
    let ws = ws.await.unwrap();
    let new = NewDocument { kind: DocumentKind::Prd, title: "Checkout".into(), metadata: None };
    let doc = store.create_document(&Principal::System, &ws.id, new).await.unwrap();
    let dir = std::env::temp_dir().join(quire_core::new_id("quire-bench-history"));
    let mut config = quire_server::ServerConfig::default();
    config.history.dir = dir.clone();
    config.history.thresholds.patch_max_chars = 0; // every edit a version
    let collab = quire_collab::Collab::new(store.clone(), config.collab.clone());
    let history = quire_app::history::History::new(
        store.clone(),
        collab.clone(),
        config.history.clone(),
        config.jobs.limits.clone(),
        std::sync::Arc::new(quire_auth::Keyring::ephemeral()),
    );
    let writer = PresenceUser { id: "usr_bench".into(), name: "Bench".into() };

    let edits = 1000.min(n);
    let mut making = Duration::ZERO;
    for i in 0..edits {
        let content = quire_collab::markdown::from_markdown(&markdown(i));
        collab
            .edit(&doc.id, writer.clone(), move |d| quire_collab::content::write_json(d, DocumentKind::Prd, &content))
            .await
            .unwrap();
        let t0 = Instant::now();
        assert!(history.version(&doc.id, &[], None).await.unwrap().is_some(), "every edit makes a version");
        making += t0.elapsed();
    }
    let per_s = edits as f64 / making.as_secs_f64();
    // The rest of the N versions, recorded as the writer records them; then the repository
    // made again from all of them.
    for i in edits..n {
        let v = quire_core::NewVersion {
            document_id: doc.id.clone(),
            workspace_id: ws.id.clone(),
            version: format!("1.{i}.0"),
            bump: "minor".into(),
            message: format!("Edited 'Section {}'", i % 50),
            authors: serde_json::json!([]),
            format: "md".into(),
            content: markdown(i),
        };
        store.add_version(&v).await.unwrap();
    }
    store.archive_versions(&doc.id, 50).await.unwrap();
    let t0 = Instant::now();
    assert_eq!(history.rebuild(&ws.id).await.unwrap(), n);
    let rebuild = t0.elapsed();

    // Reading: the first page, every page, one version, and diffs.
    let time = |f: &mut dyn FnMut() -> Duration| {
        let mut v: Vec<f64> = (0..20).map(|_| f().as_secs_f64() * 1000.0).collect();
        median(&mut v)
    };
    let rt = tokio::runtime::Handle::current();
    let s2 = store.clone();
    let id = doc.id.clone();
    let first_page = tokio::task::block_in_place(|| {
        time(&mut || {
            let t0 = Instant::now();
            rt.block_on(s2.list_versions(&id, None, 50)).unwrap();
            t0.elapsed()
        })
    });
    let t0 = Instant::now();
    let mut before = None;
    let mut listed = 0;
    loop {
        let page = store.list_versions(&doc.id, before, 200).await.unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.seq);
        listed += page.len();
    }
    let all_pages = t0.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(listed, n);
    let versions = store.list_versions(&doc.id, None, 1).await.unwrap();
    let newest = versions[0].version.clone();
    let oldest = "1.0.0".to_string();
    let middle = store.list_versions(&doc.id, Some((n / 2) as i64 + 1), 1).await.unwrap()[0].version.clone();
    let diff_of = |a: String, b: String| {
        let (s, id, rt) = (store.clone(), doc.id.clone(), rt.clone());
        move || {
            let t0 = Instant::now();
            let (_, x) = rt.block_on(s.get_version(&id, &a)).unwrap().unwrap();
            let (_, y) = rt.block_on(s.get_version(&id, &b)).unwrap().unwrap();
            let u = diff::unified(&x, &y, "a", "b");
            let by = diff::by_section(Format::Markdown, &x, &y);
            assert!(!u.is_empty() && !by.is_empty());
            t0.elapsed()
        }
    };
    let mut far = diff_of(oldest.clone(), newest.clone());
    let diff_far = tokio::task::block_in_place(|| time(&mut far));
    let prev = store.list_versions(&doc.id, None, 2).await.unwrap()[1].version.clone();
    let mut near = diff_of(prev, newest.clone());
    let diff_near = tokio::task::block_in_place(|| time(&mut near));
    let mut archived = diff_of(oldest, middle);
    let diff_archived = tokio::task::block_in_place(|| time(&mut archived));

    println!("\n{} — a PRD of ~6 KB in 50 sections", store.backend());
    println!("{:<52}{:>12}", format!("versions made per second ({edits} edits, one writer)"), format!("{per_s:.0}/s"));
    println!(
        "{:<52}{:>12}",
        format!("rebuild: {n} versions committed again"),
        format!("{:.1} s ({:.0}/s)", rebuild.as_secs_f64(), n as f64 / rebuild.as_secs_f64())
    );
    println!("{:<52}{:>12}", "list: the newest 50, median", format!("{first_page:.2} ms"));
    println!("{:<52}{:>12}", format!("list: all {n}, in pages of 200"), format!("{all_pages:.1} ms"));
    println!("{:<52}{:>12}", "diff: newest against the one before, median", format!("{diff_near:.2} ms"));
    println!("{:<52}{:>12}", "diff: newest against the first (archived), median", format!("{diff_far:.2} ms"));
    println!("{:<52}{:>12}", "diff: two archived versions, median", format!("{diff_archived:.2} ms"));
    let repo = quire_history::repo::Repo::open_or_init(&history.repo_path(&ws.id)).unwrap();
    assert_eq!(repo.log(n + 1).unwrap().len(), n);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    run(Backend::Sqlite, n).await;
    run(Backend::Postgres, n).await;
}
