//! The web app as a person uses it: `web/`'s lint, type check and unit tests, then its
//! screens in a real browser (Debian's Chromium, driven by playwright-core) against a
//! `quire serve` on SQLite started as the README says. Screenshots of every screen are
//! left in `CARGO_TARGET_TMPDIR/screenshots` for a person to look at.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::*;

fn web() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web")
}

/// Runs `program args` in `web/`; its output is shown when it fails.
fn in_web(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(web())
        .output()
        .unwrap_or_else(|e| panic!("{program} could not start ({e}): the web app's tests need Node.js and npm"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed in web/:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_web_app_lints_type_checks_and_passes_its_unit_tests() {
    // The web app's packages were installed when quire-web built it.
    for script in ["lint", "typecheck", "test"] {
        in_web("npm", &["run", "--silent", script]);
    }
}

/// Runs the browser script `e2e/<script>` against `server`; its screenshots go to
/// `CARGO_TARGET_TMPDIR/screenshots/<script's name>`, and each of `screens` must be there.
fn browser_run(server: Server, script: &str, screens: &[&str]) {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "the browser tests need Chromium at {chromium} (Debian: apt-get install chromium)"
    );
    let name = script.trim_end_matches(".mjs");
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots").join(name);
    // Only this run's screenshots (an old failure.png would mislead whoever looks).
    let _ = std::fs::remove_dir_all(&shots);
    let out = Command::new("node")
        .arg(format!("e2e/{script}"))
        .arg(format!("http://{}", server.addr))
        .arg(&shots)
        .env("CHROMIUM", &chromium)
        .current_dir(web())
        .output()
        .expect("node runs the browser tests");
    let report = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        // What the server said of it: its warnings and errors.
        let said: Vec<String> =
            server.logged().into_iter().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
        panic!(
            "the browser tests failed (screenshots in {}):\n{report}\nthe server's warnings:\n{}",
            shots.display(),
            said.join("\n")
        );
    }
    assert!(report.contains("all ok"), "{report}");
    for screen in screens {
        let file = shots.join(format!("{screen}.png"));
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(size > 5_000, "no screenshot of {screen} at {}", file.display());
    }
    server.stop();
}

#[test]
fn the_screens_work_in_a_real_browser() {
    let dir = temp_dir();
    // The small local chat model is there (by path: nothing loads it unless asked), so the
    // app's note on its drafts can be seen.
    let models = quire_local::fetch::shared_cache().expect("the default models can be fetched");
    let text_model = models.join(quire_local::catalog::DEFAULT_TEXT);
    let server =
        Server::start(&["--data-dir", dir.to_str().unwrap(), "--text-model", text_model.to_str().unwrap()], &[]);
    browser_run(
        server,
        "run.mjs",
        &[
            "signin",
            "documents-empty",
            "new-document",
            "document",
            "editor",
            "editor-two-people",
            "editor-offline",
            "editor-long",
            "documents",
            "trash",
            "not-found",
            "documents-tablet",
            "draft-streaming",
            "draft-ready",
            "draft-approved-teammate",
            "history-diff",
            "rewrite-suggestion",
            "account",
            "viewer",
            "draft-failed",
            "draft-weak-model",
        ],
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_moodboard_is_used_by_two_people_at_once_in_real_browsers() {
    let dir = temp_dir();
    let server = Server::start(&["--data-dir", dir.to_str().unwrap()], &[]);
    browser_run(
        server,
        "board.mjs",
        &[
            "board-empty",
            "board-upload-refused",
            "board-two-people",
            "board-selection",
            "board",
            "board-generated",
            "board-more-like-this",
            "board-versions",
            "board-reference",
            "board-shortcuts",
        ],
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_board_configuration_is_edited_by_two_people_at_once_in_real_browsers() {
    let dir = temp_dir();
    let server = Server::start(&["--data-dir", dir.to_str().unwrap()], &[]);
    browser_run(
        server,
        "config.mjs",
        &[
            "config-empty",
            "config-two-people",
            "config-refused-branch",
            "config-refused-desktop",
            "config-expert",
            "config",
        ],
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_board_image_is_built_and_followed_live_in_a_real_browser() {
    let dir = temp_dir();
    let armbian = fake_armbian(&dir);
    let server = Server::start(
        &["--data-dir", dir.join("data").to_str().unwrap(), "--armbian-dir", armbian.to_str().unwrap()],
        &[],
    );
    browser_run(
        server,
        "build.mjs",
        &["files", "files-conflict", "build-running", "build-done", "build-artifacts", "graphiql"],
    );
    std::fs::remove_dir_all(dir).unwrap();
}
