//! The asset store on S3-compatible object storage: moto's S3 server (`moto_server`, from
//! PyPI's `moto[server]`; `bash .ci/run` installs it) on 127.0.0.1, spoken to by the same
//! `object_store` client that talks to AWS.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use quire_assets::{ObjectError, Objects, sha256_hex};

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> (Moto, String) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("the S3 tests need moto_server ({e}): pip install 'moto[server]' (bash .ci/run does)")
        });
    let moto = Moto(child);
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (moto, format!("http://127.0.0.1:{port}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("moto_server did not listen on {port} within 10 s");
}

/// Creates a bucket (moto does not check signatures).
fn create_bucket(endpoint: &str, bucket: &str) {
    let host = endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).unwrap();
    write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "creating the bucket: {answer}");
}

#[tokio::test]
async fn objects_live_in_s3_as_on_disk() {
    let (_moto, endpoint) = start_moto();
    create_bucket(&endpoint, "quire-assets");
    // SAFETY of set_var: this test binary runs this one test.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "quire");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "quire-secret");
        std::env::set_var("AWS_REGION", "us-east-1");
    }
    let objects = Objects::s3("s3://quire-assets", Some(&endpoint)).unwrap();
    assert_eq!(objects.location(), "s3://quire-assets");
    let bytes = Bytes::from((0..100_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let sha = objects.put(bytes.clone()).await.unwrap();
    assert_eq!(sha, sha256_hex(&bytes));
    assert_eq!(objects.put(bytes.clone()).await.unwrap(), sha, "kept once");
    assert_eq!(objects.get(&sha).await.unwrap(), bytes);
    assert_eq!(objects.size(&sha).await.unwrap(), 100_000);
    let part = objects.get_range(&sha, Some(99_990..200_000)).await.unwrap();
    assert_eq!((part.bytes, part.range, part.size), (bytes.slice(99_990..), 99_990..100_000, 100_000));
    let streamed: Vec<Bytes> =
        futures_util::StreamExt::collect::<Vec<_>>(objects.stream(&sha, 10..90_000).await.unwrap())
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    assert_eq!(streamed.concat(), bytes[10..90_000], "a ranged read, streamed");
    assert_eq!(objects.list().await.unwrap(), vec![(sha.clone(), 100_000)]);
    objects.delete(&sha).await.unwrap();
    assert!(!objects.exists(&sha).await.unwrap());
    assert!(matches!(objects.get(&sha).await, Err(ObjectError::NotFound(_))));
    // A bucket that is not there is an error that names the store, not a hang.
    let missing = Objects::s3("s3://no-such-bucket", Some(&endpoint)).unwrap();
    assert!(missing.put(Bytes::from_static(b"x")).await.is_err());
}
