//! Starting the real `datavista serve` binary: the one place that launches it and waits for
//! its "DataVista listening on" line. The tests' [`crate::TestServer`], the E2E test and the
//! load generator all come through here.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The first line the server prints once it listens; the address follows it.
const LISTENING: &str = "DataVista listening on ";

/// The server binary the tests start: `DATAVISTA_BIN` if set (the E2E test and the benchmarks
/// name a release build), otherwise the `datavista` cargo built next to the running test
/// (`target/debug/deps/TEST` → `target/debug/datavista`), which holds under any
/// `CARGO_TARGET_DIR`.
pub fn binary() -> PathBuf {
    if let Some(binary) = std::env::var_os("DATAVISTA_BIN") {
        return PathBuf::from(binary);
    }
    let test = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = test
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test binary lives in target/PROFILE/deps");
    profile_dir.join(format!("datavista{}", std::env::consts::EXE_SUFFIX))
}

/// How to start one server: `serve` on `bind` with `data_dir`, more flags, more environment.
pub struct Launch {
    pub binary: PathBuf,
    pub bind: String,
    pub data_dir: PathBuf,
    /// The dashboard's files; by default a dir that does not exist (the API alone).
    pub dist_dir: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
    /// Where the server's log (stderr) goes; the test's own stderr by default.
    pub stderr: Option<std::fs::File>,
}

impl Launch {
    /// `binary serve --bind 127.0.0.1:0 --data-dir DATA_DIR --log warn`.
    pub fn new(binary: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Launch {
        Launch {
            binary: binary.into(),
            bind: "127.0.0.1:0".to_owned(),
            data_dir: data_dir.into(),
            dist_dir: PathBuf::from("/nonexistent-dist"),
            args: Vec::new(),
            env: Vec::new(),
            stderr: None,
        }
    }

    pub fn bind(mut self, bind: &str) -> Launch {
        self.bind = bind.to_owned();
        self
    }

    pub fn dist_dir(mut self, dist_dir: &Path) -> Launch {
        self.dist_dir = dist_dir.to_owned();
        self
    }

    /// More `serve` flags, after the defaults (so they can repeat one to override it).
    pub fn args<S: AsRef<std::ffi::OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Launch {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Launch {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn log_to(mut self, file: std::fs::File) -> Launch {
        self.stderr = Some(file);
        self
    }

    /// `--dist-dir DIST_DIR`, unless the extra flags name their own.
    fn default_dist_dir(&self) -> Vec<OsString> {
        if self.args.iter().any(|a| a == "--dist-dir") {
            return Vec::new();
        }
        vec!["--dist-dir".into(), self.dist_dir.clone().into_os_string()]
    }

    /// Start it and wait for the address it prints; returns the process and `http://ADDRESS`.
    pub fn spawn(&self) -> Result<(Child, String), String> {
        let stderr = match &self.stderr {
            Some(file) => Stdio::from(
                file.try_clone()
                    .map_err(|e| format!("cannot share the log file: {e}"))?,
            ),
            None => Stdio::inherit(),
        };
        let mut process = Command::new(&self.binary)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(["serve", "--bind", &self.bind, "--log", "warn", "--data-dir"])
            .arg(&self.data_dir)
            .args(self.default_dist_dir())
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        let mut line = String::new();
        let read =
            BufReader::new(process.stdout.take().expect("piped stdout")).read_line(&mut line);
        match line.trim().strip_prefix(LISTENING) {
            Some(base) if read.is_ok() => Ok((process, base.to_owned())),
            _ => {
                let _ = process.kill();
                let _ = process.wait();
                Err(format!(
                    "unexpected first line from the server: {line:?} ({read:?})"
                ))
            }
        }
    }
}

/// A value from `/proc/PID/status` in KiB (`VmRSS:`, `VmHWM:`); `None` once the process is gone.
pub fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}
