//! What the binary's test suites share: a running `quire serve` with its log followed,
//! one-shot commands, and temporary folders.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_quire");

pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(quire_core::new_id("quire-cli"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A copy of the fake Armbian checkout (`tests/fake-armbian`) in `dir` (builds write into
/// their checkout's `output/`).
pub fn fake_armbian(dir: &std::path::Path) -> PathBuf {
    let armbian = dir.join("armbian");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fake-armbian"))
        .arg(&armbian)
        .status()
        .unwrap();
    assert!(copied.success(), "copying the fake Armbian checkout");
    armbian
}

/// A running `quire serve`, its address, and its log lines as they arrive.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub lines: mpsc::Receiver<String>,
}

impl Server {
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut server = Server::spawn(&[&["serve", "--addr", "127.0.0.1:0"], args].concat(), envs);
        let line = server.wait_for("listening on http://");
        let start = line.find("http://").unwrap() + 7;
        server.addr = line[start..].split(|c: char| c.is_whitespace() || c == '"').next().unwrap().to_string();
        server
    }

    /// `quire ARGS…`, its log lines followed.
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        // No test downloads models unless it says so (the local models test uses the cache).
        cmd.env("QUIRE_FETCH_MODELS", "false");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("run quire");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Server { child, addr: String::new(), lines }
    }

    /// The log lines written since the last look.
    pub fn logged(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    pub fn wait_for(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(_) => {
                    let _ = self.child.kill();
                    let mut err = String::new();
                    self.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                    panic!("quire never logged {needle:?}; stderr: {err}");
                }
            }
        }
    }

    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        self.request_as(None, method, path, body)
    }

    pub fn request_as(&self, token: Option<&str>, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        let body = body.unwrap_or("");
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// A GET whose whole body is returned as text (HTTP/1.0, so not chunked): for streams
    /// that end on their own.
    pub fn get_text(&self, token: &str, path: &str) -> String {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n", self.addr).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
    }

    /// Signs in (signing up first if needed); returns the access token.
    pub fn sign_in(&self, email: &str) -> String {
        let creds = format!(r#"{{"email":"{email}","password":"correct horse battery","name":"Tester"}}"#);
        let (status, body) = self.request("POST", "/api/v1/auth/signup", Some(&creds));
        let body = if status == 201 {
            body
        } else {
            let login = format!(r#"{{"email":"{email}","password":"correct horse battery"}}"#);
            let (status, body) = self.request("POST", "/api/v1/auth/login", Some(&login));
            assert_eq!(status, 200, "{body}");
            body
        };
        body["access_token"].as_str().unwrap().to_string()
    }

    /// SIGTERM, then the exit status.
    pub fn stop(self) -> std::process::ExitStatus {
        let mut this = self;
        this.terminate()
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("quire did not stop within 10 s of SIGTERM");
    }
}

/// A test that fails half-way must not leave its server running.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run(args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}
