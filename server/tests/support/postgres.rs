//! A real PostgreSQL for tests: a fresh cluster in a temp dir on a free loopback port,
//! stopped and removed on drop. It uses Debian's packaged server (`apt-get install
//! postgresql`, which `.ci/run` does); a missing server fails the test, it does not skip it.
//! PostgreSQL refuses to run as root, so under root the cluster runs as the `postgres` user
//! the package creates.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct TestPostgres {
    server: Child,
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    _dir: tempfile::TempDir,
    /// `postgres://datavista@127.0.0.1:PORT/postgres`
    pub url: String,
}

impl TestPostgres {
    pub fn start() -> TestPostgres {
        let bin = server_bin_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let as_postgres = running_as_root();
        if as_postgres {
            let owned = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(owned.success(), "the temp dir goes to the postgres user");
        }
        let initdb = command(as_postgres, &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "datavista",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .stdout(Stdio::null())
            .output()
            .expect("initdb runs");
        assert!(
            initdb.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let port = free_port();
        let server = command(as_postgres, &bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-k")
            .arg(dir.path())
            // A throwaway cluster: durability only costs time here.
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres starts");
        let postgres = TestPostgres {
            server,
            bin,
            data,
            as_postgres,
            _dir: dir,
            url: format!("postgres://datavista@127.0.0.1:{port}/postgres"),
        };
        postgres.wait_ready(port);
        postgres
    }

    fn wait_ready(&self, port: u16) {
        for _ in 0..300 {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "datavista",
                ])
                .stdout(Stdio::null())
                .status()
                .expect("pg_isready runs");
            if ready.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("PostgreSQL did not accept connections within 15 s");
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // A fast shutdown: the cluster is thrown away.
        let _ = command(self.as_postgres, &self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// The newest installed server's binaries: /usr/lib/postgresql/<version>/bin.
fn server_bin_dir() -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql").unwrap_or_else(|e| {
        panic!("no PostgreSQL server in /usr/lib/postgresql ({e}): apt-get install postgresql")
    });
    versions
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists())
        .max_by_key(|bin| {
            bin.parent()
                .and_then(Path::file_name)
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        })
        .expect("a PostgreSQL server under /usr/lib/postgresql: apt-get install postgresql")
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `program`, run as the `postgres` user when asked (setpriv execs in place, so killing the
/// child kills the program itself).
fn command(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}
