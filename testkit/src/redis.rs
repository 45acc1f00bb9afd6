//! A real Redis for tests: Debian's `redis-server` (which `cargo xtask test` installs) on a
//! free loopback port, nothing saved to disk, killed on drop. It can be restarted on the same
//! port, to test how the nodes come back from a Redis outage, paused (as a Redis too busy to
//! answer), and anyone who can reach it can publish on it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct TestRedis {
    server: Option<Child>,
    port: u16,
    /// `redis://127.0.0.1:PORT`
    pub url: String,
    /// With [`TestRedis::start_with_tls`]: `rediss://127.0.0.1:TLS_PORT` (the plain port stays
    /// open too, for the test's own commands).
    pub tls_url: Option<String>,
    /// Where `server.pem`, `server.key` and `ca.pem` are.
    certificates: Option<PathBuf>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl TestRedis {
    pub fn start() -> TestRedis {
        TestRedis::start_with(None)
    }

    /// Also listening for TLS, with the certificate in `certificates` (see
    /// `crate::postgres::make_certificates`).
    pub fn start_with_tls(certificates: &Path) -> TestRedis {
        TestRedis::start_with(Some(certificates.to_owned()))
    }

    fn start_with(certificates: Option<PathBuf>) -> TestRedis {
        let port = free_port();
        let tls_url = certificates
            .as_ref()
            .map(|_| format!("rediss://127.0.0.1:{}", free_port()));
        let mut redis = TestRedis {
            server: None,
            port,
            url: format!("redis://127.0.0.1:{port}"),
            tls_url,
            certificates,
        };
        redis.launch();
        redis
    }

    fn launch(&mut self) {
        let mut server = Command::new("redis-server");
        if let (Some(url), Some(dir)) = (&self.tls_url, &self.certificates) {
            let file = |name: &str| dir.join(name).display().to_string();
            server.args(["--tls-port", url.rsplit(':').next().unwrap()]);
            server.args(["--tls-cert-file", &file("server.pem")]);
            server.args(["--tls-key-file", &file("server.key")]);
            server.args(["--tls-ca-cert-file", &file("ca.pem")]);
            server.args(["--tls-auth-clients", "no"]);
        }
        let server = server
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        self.server = Some(server);
        for _ in 0..200 {
            if self.answers_ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not answer within 5 s");
    }

    /// Kill Redis (every connection drops, every message in flight is lost), then start it
    /// again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Redis stops answering (SIGSTOP): connections stay open, commands wait.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Redis answers again, the commands that waited first.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.server.as_ref().expect("redis-server runs").id();
        let sent = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill {signal} {pid}");
    }

    /// `PUBLISH channel payload`, as any client that reaches Redis can; how many subscribers
    /// it reached.
    pub fn publish(&self, channel: &str, payload: &str) -> u64 {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("Redis answers");
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut command = String::from("*3\r\n");
        for part in ["PUBLISH", channel, payload] {
            command.push_str(&format!("${}\r\n{part}\r\n", part.len()));
        }
        stream
            .write_all(command.as_bytes())
            .expect("the command is sent");
        let mut reply = String::new();
        let mut byte = [0; 1];
        while !reply.ends_with("\r\n") {
            stream.read_exact(&mut byte).expect("Redis replies");
            reply.push(byte[0] as char);
        }
        reply
            .strip_prefix(':')
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("PUBLISH answered {reply:?}"))
    }

    fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
