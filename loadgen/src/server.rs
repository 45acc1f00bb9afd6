//! The server under test: the release `datavista serve` binary on 127.0.0.1:0 with a temp data
//! dir, started by the test kit's `Launch`, plus what the benchmarks read from outside it
//! (RSS and CPU time from /proc).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use datavista_testkit::spawn::{proc_status_kib, Launch};

pub struct Server {
    process: Child,
    pub base: String,
    pub data_dir: PathBuf,
    binary: PathBuf,
    extra: Vec<String>,
    /// The data dir's temp dir, kept by the first node of a cluster.
    _temp: Option<tempfile::TempDir>,
}

impl Server {
    /// `binary` is a release build (see `cargo xtask bench`); `extra` are more `serve` flags.
    pub fn start(binary: &Path, extra: &[&str]) -> Result<Server, String> {
        let temp = tempfile::Builder::new()
            .prefix("datavista-bench")
            .tempdir_in(std::env::var_os("DATAVISTA_BENCH_DIR").unwrap_or_else(|| ".".into()))
            .map_err(|e| format!("cannot make a temp dir: {e}"))?;
        Server::start_in(binary, temp, "127.0.0.1:0", extra)
    }

    /// Start with its data dir inside `temp` (which it keeps) and listening on `bind`.
    pub fn start_in(
        binary: &Path,
        temp: tempfile::TempDir,
        bind: &str,
        extra: &[&str],
    ) -> Result<Server, String> {
        let data_dir = temp.path().join("data");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (process, base) = spawn(binary, &data_dir, bind, &extra)?;
        Ok(Server {
            process,
            base,
            data_dir,
            binary: binary.to_owned(),
            extra,
            _temp: Some(temp),
        })
    }

    /// Another node on the same data dir, with the same flags (which must name a shared
    /// database and event bus). Keep this server alive at least as long as the new one.
    pub fn another_node(&self) -> Result<Server, String> {
        let (process, base) = spawn(&self.binary, &self.data_dir, "127.0.0.1:0", &self.extra)?;
        Ok(Server {
            process,
            base,
            data_dir: self.data_dir.clone(),
            binary: self.binary.clone(),
            extra: self.extra.clone(),
            _temp: None,
        })
    }

    /// SIGKILL, then start again on the same address and data dir (for fault injection).
    pub fn kill_and_restart(&mut self) -> Result<(), String> {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let bind = self.base.trim_start_matches("http://").to_owned();
        // The port can stay busy for a moment after the kill: a bounded number of tries.
        let mut last_error = String::new();
        for _ in 0..50 {
            match spawn(&self.binary, &self.data_dir, &bind, &self.extra) {
                Ok((process, _)) => {
                    self.process = process;
                    return Ok(());
                }
                Err(e) => last_error = e,
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Err(format!("the server did not come back: {last_error}"))
    }

    /// The exit status, if the server has stopped on its own.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.process.try_wait().ok().flatten()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn ws_url(&self, query: &str) -> String {
        format!("{}/ws{query}", self.base.replacen("http://", "ws://", 1))
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.process.id(), "VmRSS:").unwrap_or(0)
    }

    /// User + system CPU time used so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.process.id()))
            .unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let after_name = stat.rsplit(')').next().unwrap_or_default();
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (ticks(11) + ticks(12)) / clock_ticks_per_second()
    }

    /// A new anonymous dashboard session: its `Cookie` header value.
    pub async fn session(&self, http: &reqwest::Client) -> Result<String, String> {
        let response = http
            .get(self.url("/api/session"))
            .send()
            .await
            .map_err(|e| format!("GET /api/session: {e}"))?;
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .ok_or("GET /api/session set no cookie")?;
        Ok(cookie.split(';').next().unwrap_or_default().to_owned())
    }
}

impl Server {
    /// The Table Schema JSON the server validates against for `id`.
    pub async fn schema_body(&self, id: &str) -> Result<String, String> {
        let http = reqwest::Client::new();
        let cookie = self.session(&http).await?;
        let response = http
            .get(self.url(&format!("/api/schemas/{id}")))
            .header("cookie", cookie)
            .send()
            .await
            .map_err(|e| format!("GET /api/schemas/{id}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "GET /api/schemas/{id} answered {}",
                response.status()
            ));
        }
        response.text().await.map_err(|e| e.to_string())
    }
}

/// Start `datavista serve` through the test kit; returns the process and its `http://` address.
fn spawn(
    binary: &Path,
    data_dir: &Path,
    bind: &str,
    extra: &[String],
) -> Result<(Child, String), String> {
    Launch::new(binary, data_dir)
        .bind(bind)
        // Every simulated dashboard comes from this one address.
        .args(["--new-sessions-per-minute", "0"])
        .args(extra)
        .spawn()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Linux reports CPU times in clock ticks; 100 per second on every mainstream configuration.
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
