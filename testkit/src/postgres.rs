//! A real PostgreSQL for tests: a fresh cluster in a temp dir on a free loopback port,
//! stopped and removed on drop. It uses Debian's packaged server (`apt-get install
//! postgresql`, which `.ci/run` does); a missing server fails the test, it does not skip it.
//! PostgreSQL refuses to run as root, so under root the cluster runs as the `postgres` user
//! the package creates.
//!
//! [`TestPostgres::start_tls_only`] makes a cluster that accepts TLS connections only, with a
//! certificate for 127.0.0.1 from a throwaway CA (made with the `openssl` command, which
//! Debian's PostgreSQL packages depend on).

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
    /// The CA that signed the server's certificate (TLS-only clusters).
    pub ca_file: Option<PathBuf>,
}

impl TestPostgres {
    pub fn start() -> TestPostgres {
        TestPostgres::start_with(false)
    }

    /// A cluster that refuses connections without TLS.
    pub fn start_tls_only() -> TestPostgres {
        TestPostgres::start_with(true)
    }

    fn start_with(tls_only: bool) -> TestPostgres {
        let bin = server_bin_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let as_postgres = running_as_root();
        let tls = tls_only.then(|| make_certificates(dir.path()));
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
        let mut server = command(as_postgres, &bin.join("postgres"));
        if tls.is_some() {
            // Only `hostssl` lines: a connection without TLS finds no entry and is refused.
            std::fs::write(
                data.join("pg_hba.conf"),
                "hostssl all all 127.0.0.1/32 trust\n",
            )
            .expect("pg_hba.conf is writable");
            let file = |name: &str| format!("{}", dir.path().join(name).display());
            server.args(["-c", "ssl=on"]);
            server.args(["-c", &format!("ssl_cert_file={}", file("server.pem"))]);
            server.args(["-c", &format!("ssl_key_file={}", file("server.key"))]);
        }
        let server = server
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
            ca_file: tls,
        };
        postgres.wait_ready(port);
        postgres
    }

    fn wait_ready(&self, port: u16) {
        // pg_isready only asks whether the server accepts connections: no TLS needed.
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

/// A CA and a certificate for 127.0.0.1 signed by it, in `dir`: `ca.pem`, `server.pem` and
/// `server.key` (private, as PostgreSQL requires). Returns the CA's file. The TLS Redis of
/// the multi-node tests uses them too.
pub fn make_certificates(dir: &Path) -> PathBuf {
    let openssl = |args: &[&str]| {
        let made = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl runs (apt-get install openssl)");
        assert!(
            made.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    };
    let new_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"],
            &new_key[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=datavista test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"],
            &new_key[..],
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    dir.join("ca.pem")
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
