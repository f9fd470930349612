//! A git server for tests: git's own `git http-backend` (the reference implementation of
//! the smart HTTP protocol) behind a small HTTP/1.1 listener on 127.0.0.1, with HTTP Basic
//! authentication like a hosted forge's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;

/// A running server; repositories are the bare ones under its root, at `<url>/<name>.git`.
pub struct GitHttpServer {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    pushes: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

impl GitHttpServer {
    /// Serves the repositories under `root`, asking for `username`/`password` when given.
    pub fn start(root: &Path, credentials: Option<(&str, &str)>) -> std::io::Result<GitHttpServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let expected = credentials
            .map(|(u, p)| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))));
        let (pushes, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let server = Server { root: root.to_path_buf(), expected, pushes: pushes.clone(), refused: refused.clone() };
        let server = Arc::new(server);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let server = server.clone();
                std::thread::spawn(move || {
                    let _ = server.serve(stream);
                });
            }
        });
        Ok(GitHttpServer { url, pushes, refused })
    }

    /// Pushes the server accepted (`POST …/git-receive-pack` answered).
    pub fn pushes(&self) -> usize {
        self.pushes.load(Ordering::SeqCst)
    }

    /// Requests refused for their credentials.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

struct Server {
    root: PathBuf,
    expected: Option<String>,
    pushes: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

impl Server {
    fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or("/").to_string());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let mut out = stream;
        if let Some(expected) = &self.expected
            && header("authorization").as_ref() != Some(expected)
        {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return out.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\n\
                  Connection: close\r\n\r\n",
            );
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        // The CGI interface git http-backend is written for; pushes are allowed to anyone
        // who got past the credentials.
        let cgi = Command::new("git")
            .arg("http-backend")
            .env("GIT_PROJECT_ROOT", &self.root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.receivepack")
            .env("GIT_CONFIG_VALUE_0", "true")
            .env("REQUEST_METHOD", &method)
            .env("PATH_INFO", path)
            .env("QUERY_STRING", query)
            .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
            .env("CONTENT_LENGTH", length.to_string())
            .env("REMOTE_USER", "quire")
            .env("REMOTE_ADDR", "127.0.0.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut child = cgi;
        child.stdin.take().map(|mut i| i.write_all(&body)).transpose()?;
        let output = child.wait_with_output()?;
        let split = output.stdout.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(output.stdout.len());
        let head = String::from_utf8_lossy(&output.stdout[..split]).to_string();
        let content = output.stdout.get(split + 4..).unwrap_or_default();
        let mut status = "200 OK".to_string();
        let mut response = String::new();
        for h in head.lines() {
            match h.split_once(':') {
                Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
                Some(_) => response.push_str(&format!("{h}\r\n")),
                None => {}
            }
        }
        if method == "POST" && path.ends_with("/git-receive-pack") && status.starts_with("200") {
            self.pushes.fetch_add(1, Ordering::SeqCst);
        }
        out.write_all(
            format!("HTTP/1.1 {status}\r\n{response}Content-Length: {}\r\nConnection: close\r\n\r\n", content.len())
                .as_bytes(),
        )?;
        out.write_all(content)
    }
}
