//! A real S3-compatible server for tests: `s3s-fs` from crates.io (which `cargo xtask test`
//! installs) on a free loopback port, with credentials, storing into a temp dir; killed on drop.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BUCKET: &str = "datavista";
const ACCESS_KEY: &str = "datavista-test";
const SECRET_KEY: &str = "datavista-test-secret";

pub struct TestS3 {
    server: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// Where s3s-fs keeps the bucket's objects (one file per object, under `BUCKET/`).
    pub root: PathBuf,
    _temp: tempfile::TempDir,
}

impl TestS3 {
    pub fn start() -> TestS3 {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("s3");
        std::fs::create_dir_all(root.join(BUCKET)).unwrap(); // a folder is a bucket
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let server = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root)
            .stdout(Stdio::null())
            .spawn()
            .expect("s3s-fs runs (cargo install s3s-fs --features binary)");
        let s3 = TestS3 {
            server,
            endpoint: format!("http://127.0.0.1:{port}"),
            root,
            _temp: temp,
        };
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return s3;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("s3s-fs did not listen within 5 s");
    }

    /// `s3://datavista/PREFIX`
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// The environment a client of this server needs (the usual AWS variables).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }

    /// Files under the bucket's `prefix` (s3s-fs stores each object as a file).
    pub fn objects(&self, prefix: &str) -> Vec<String> {
        let mut found = Vec::new();
        collect_files(&self.root.join(BUCKET).join(prefix), &mut found);
        found
    }

    /// As [`TestS3::objects`], once the server has cleaned up: a job's file goes just after
    /// its final state is stored, so this waits (up to 2 s) for `prefix` to empty.
    pub fn objects_settled(&self, prefix: &str) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            let left = self.objects(prefix);
            if left.is_empty() || std::time::Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn collect_files(dir: &Path, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, found);
        } else {
            found.push(path.to_string_lossy().into_owned());
        }
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}
