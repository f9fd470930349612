//! Builds the web app in `web/` with Vite into `OUT_DIR/dist` and writes `assets.rs`: every
//! file of it embedded with `include_bytes!`, with a gzip copy where that is smaller.
//!
//! Needs Node.js (≥ 20.19) and npm; `npm ci` runs in `web/` when its packages are missing or
//! older than `package-lock.json` (npm's cache lives outside the checkout, in `~/.npm`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let web = manifest.join("../../web").canonicalize().expect("the web app's folder, web/, is missing");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let dist = out.join("dist");

    for watched in
        ["src", "public", "index.html", "package.json", "package-lock.json", "vite.config.ts", "tsconfig.json"]
    {
        println!("cargo:rerun-if-changed={}", web.join(watched).display());
    }
    // The Armbian build schema Quire ships, whose validators the web build compiles.
    println!("cargo:rerun-if-changed={}", manifest.join("../quire-armbian/schemas").display());
    println!("cargo:rerun-if-env-changed=QUIRE_WEB_DIST");

    // A web app built elsewhere (a packager's, or a machine without Node.js) can be given.
    let dist = match std::env::var_os("QUIRE_WEB_DIST") {
        Some(prebuilt) => PathBuf::from(prebuilt),
        None => {
            install(&web);
            run(
                Command::new(web.join("node_modules/.bin/vite"))
                    .args(["build", "--emptyOutDir", "--logLevel", "warn", "--outDir"])
                    .arg(&dist)
                    .current_dir(&web),
                "vite build",
            );
            dist
        }
    };

    let mut files = Vec::new();
    collect(&dist, &dist, &mut files);
    files.sort();
    assert!(files.iter().any(|f| f == "index.html"), "the web app's build has no index.html in {}", dist.display());

    let mut table = String::from("&[\n");
    for file in &files {
        let source = dist.join(file);
        let bytes = std::fs::read(&source).unwrap();
        let gzip = if compressible(file) {
            let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            z.write_all(&bytes).unwrap();
            let z = z.finish().unwrap();
            (z.len() < bytes.len()).then_some(z)
        } else {
            None
        };
        let gzip = match gzip {
            Some(z) => {
                let path = out.join("gz").join(format!("{file}.gz"));
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, z).unwrap();
                format!("Some(include_bytes!({:?}))", path.display().to_string())
            }
            None => "None".to_string(),
        };
        writeln!(
            table,
            "    Asset {{ path: {:?}, content_type: {:?}, bytes: include_bytes!({:?}), gzip: {gzip}, immutable: {} }},",
            format!("/{file}"),
            content_type(file),
            source.display().to_string(),
            file.starts_with("assets/"),
        )
        .unwrap();
    }
    table.push(']');
    std::fs::write(out.join("assets.rs"), table).unwrap();
}

/// `npm ci` when `node_modules` is missing or older than the lock file.
fn install(web: &Path) {
    let lock = std::fs::metadata(web.join("package-lock.json")).and_then(|m| m.modified()).ok();
    let installed = std::fs::metadata(web.join("node_modules/.package-lock.json")).and_then(|m| m.modified()).ok();
    if installed.is_some() && installed >= lock {
        return;
    }
    run(Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir(web), "npm ci");
}

fn run(command: &mut Command, what: &str) {
    let status = command.status().unwrap_or_else(|e| {
        panic!(
            "{what} could not start ({e}). Quire's web app is built with Node.js 20.19 or newer and npm \
             (Debian: apt-get install nodejs npm), or set QUIRE_WEB_DIST to a folder with a built web app"
        )
    });
    assert!(status.success(), "{what} failed in web/ ({status}); its output is above");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            files.push(path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
        }
    }
}

fn compressible(file: &str) -> bool {
    [".js", ".css", ".html", ".svg", ".json", ".txt", ".map", ".webmanifest"].iter().any(|e| file.ends_with(e))
}

fn content_type(file: &str) -> &'static str {
    let ext = file.rsplit('.').next().unwrap_or_default();
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}
