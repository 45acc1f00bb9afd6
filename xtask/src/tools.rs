//! Installing the pinned tools, only when they are missing or of another version, so a
//! second run costs a few version checks. Everything comes from crates.io, npm, PyPI (through
//! pip, for frictionless-py) or Debian's packages: nothing is downloaded from anywhere else.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{run, step};

/// Must equal the `wasm-bindgen` version pinned in the workspace Cargo.toml.
pub const WASM_BINDGEN_VERSION: &str = "0.2.130";
/// Trunk 0.22 needs a newer rustc than these machines have.
pub const TRUNK_VERSION: &str = "0.21.14";
/// wasm-opt from npm (Debian's binaryen 108 silently breaks the wasm); must match
/// `[tools] wasm_opt` in Trunk.toml.
pub const BINARYEN_VERSION: &str = "132.0.0";
/// The fuzzer driver (libFuzzer through `libfuzzer-sys`; runs on stable with `--sanitizer none`).
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// The S3-compatible server the storage tests run against (0.15 needs a newer rustc).
pub const S3S_FS_VERSION: &str = "0.14.1";
/// frictionless-py, the reference of the differential test (shared/tests/frictionless_parity.rs);
/// it and everything it pulls in are pinned in xtask/frictionless-requirements.txt.
pub const FRICTIONLESS_VERSION: &str = "5.21.0";
const FRICTIONLESS_REQUIREMENTS: &str = include_str!("../frictionless-requirements.txt");
/// The wasm-bindgen-cli lockfile pins a webpki-roots release the registry does not serve;
/// this one builds the same CLI.
const WEBPKI_ROOTS_FIX: &str = "1.0.10";

pub fn ensure_test_tools() -> Result<(), String> {
    ensure_build_tools()?;
    ensure_cargo_fuzz()?;
    ensure_s3s_fs()?;
    ensure_debian_packages()?;
    ensure_frictionless()
}

fn ensure_s3s_fs() -> Result<(), String> {
    ensure_cargo_install(
        "s3s-fs",
        S3S_FS_VERSION,
        "binary", // its server binary is behind a feature
        &["s3s-fs", "--version"],
        "about 3 minutes",
    )
}

pub fn ensure_cargo_fuzz() -> Result<(), String> {
    ensure_cargo_install(
        "cargo-fuzz",
        CARGO_FUZZ_VERSION,
        "",
        &["cargo", "fuzz", "--version"],
        "about 3 minutes",
    )
}

/// `cargo install NAME --version VERSION --locked [--features FEATURES]` unless `check`
/// already prints "NAME VERSION".
fn ensure_cargo_install(
    name: &str,
    version: &str,
    features: &str,
    check: &[&str],
    how_long: &str,
) -> Result<(), String> {
    let wanted = format!("{name} {version}");
    if output(check[0], &check[1..]).is_some_and(|v| v.trim() == wanted) {
        return Ok(());
    }
    step(&format!(
        "installing {name} {version} from crates.io ({how_long})"
    ));
    let mut install = Command::new(crate::cargo());
    install.args(["install", name, "--version", version, "--locked", "--force"]);
    if !features.is_empty() {
        install.args(["--features", features]);
    }
    run(&mut install)
}

/// What building the dashboard needs.
pub fn ensure_build_tools() -> Result<(), String> {
    ensure_wasm_target()?;
    ensure_wasm_bindgen()?;
    ensure_trunk()?;
    ensure_wasm_opt()
}

fn ensure_trunk() -> Result<(), String> {
    ensure_cargo_install(
        "trunk",
        TRUNK_VERSION,
        "",
        &["trunk", "--version"],
        "about 20 minutes on 2 cores",
    )
}

/// The project-local folder for npm-installed tools (git-ignored).
pub fn tools_bin() -> PathBuf {
    crate::workspace().join(".tools/node_modules/.bin")
}

fn ensure_wasm_opt() -> Result<(), String> {
    let major = BINARYEN_VERSION.split('.').next().unwrap_or_default();
    let wasm_opt = tools_bin().join("wasm-opt");
    if output(wasm_opt.to_str().unwrap_or_default(), &["--version"])
        .is_some_and(|v| v.contains(&format!("version_{major}")))
    {
        return Ok(());
    }
    step(&format!(
        "installing wasm-opt (npm binaryen@{BINARYEN_VERSION}) into .tools/"
    ));
    let tools = crate::workspace().join(".tools");
    std::fs::create_dir_all(&tools).map_err(|e| e.to_string())?;
    run(Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&tools)
        .arg(format!("binaryen@{BINARYEN_VERSION}")))
}

fn ensure_wasm_target() -> Result<(), String> {
    let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if installed
        .lines()
        .any(|line| line.trim() == "wasm32-unknown-unknown")
    {
        return Ok(());
    }
    step("adding the wasm32-unknown-unknown target");
    run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))
}

/// wasm-bindgen-cli (it brings wasm-bindgen-test-runner) at exactly the pinned version.
fn ensure_wasm_bindgen() -> Result<(), String> {
    let wanted = format!("wasm-bindgen {WASM_BINDGEN_VERSION}");
    if output("wasm-bindgen", &["--version"]).is_some_and(|v| v.trim() == wanted) {
        return Ok(());
    }
    step(&format!(
        "installing wasm-bindgen-cli {WASM_BINDGEN_VERSION} from crates.io (about 7 minutes)"
    ));
    let cargo = crate::cargo();
    let locked = Command::new(&cargo)
        .args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            WASM_BINDGEN_VERSION,
            "--locked",
            "--force",
        ])
        .status()
        .map_err(|e| format!("cannot run cargo install: {e}"))?;
    if locked.success() {
        return Ok(());
    }
    // The failed attempt left the crate's source in cargo's registry: fix its lockfile there.
    eprintln!("retrying with webpki-roots {WEBPKI_ROOTS_FIX} in the lockfile");
    let source = registry_source(&format!("wasm-bindgen-cli-{WASM_BINDGEN_VERSION}"))
        .ok_or("the wasm-bindgen-cli source is not in cargo's registry cache")?;
    // Outside the workspace, or cargo would take the copy for one of its members.
    let copy =
        std::env::temp_dir().join(format!("datavista-wasm-bindgen-cli-{WASM_BINDGEN_VERSION}"));
    let _ = std::fs::remove_dir_all(&copy);
    copy_dir(&source, &copy).map_err(|e| format!("cannot copy {}: {e}", source.display()))?;
    run(Command::new(&cargo)
        .args([
            "update",
            "-p",
            "webpki-roots",
            "--precise",
            WEBPKI_ROOTS_FIX,
        ])
        .current_dir(&copy))?;
    run(Command::new(&cargo)
        .args(["install", "--locked", "--force", "--path"])
        .arg(&copy))?;
    // Its build stayed in the copy's target/: hundreds of MB nothing uses again.
    let _ = std::fs::remove_dir_all(&copy);
    Ok(())
}

/// Chromium and chromedriver for the dashboard tests, PostgreSQL and Redis for the store and
/// multi-node tests, from Debian's packages: one `apt-get install` of whatever is missing.
fn ensure_debian_packages() -> Result<(), String> {
    let postgres_installed = std::fs::read_dir("/usr/lib/postgresql").is_ok_and(|versions| {
        versions
            .filter_map(Result::ok)
            .any(|v| v.path().join("bin/postgres").exists())
    });
    let wanted = [
        (Path::new("/usr/bin/chromium").exists(), "chromium"),
        (
            Path::new("/usr/bin/chromedriver").exists(),
            "chromium-driver",
        ),
        (postgres_installed, "postgresql"),
        (Path::new("/usr/bin/redis-server").exists(), "redis-server"),
        // Makes the throwaway certificate authority of the TLS tests (PostgreSQL, Redis).
        (Path::new("/usr/bin/openssl").exists(), "openssl"),
    ];
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(installed, _)| !installed)
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    apt_install(&missing)
}

/// `apt-get install` of Debian packages (through sudo unless root), after `apt-get update`.
fn apt_install(packages: &[&str]) -> Result<(), String> {
    step(&format!(
        "installing {} from Debian's packages",
        packages.join(", ")
    ));
    let root = output("id", &["-u"]).is_some_and(|id| id.trim() == "0");
    let apt = |args: &[&str]| {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            Command::new("sudo")
        };
        if !root {
            command.arg("apt-get");
        }
        command.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        run(&mut command)
    };
    apt(&["update"])?;
    apt(&[&["install", "-y", "--no-install-recommends"][..], packages].concat())
}

/// The virtual environment the differential test takes frictionless-py from (git-ignored).
pub fn frictionless_venv() -> PathBuf {
    crate::workspace().join("target/frictionless-venv")
}

/// frictionless-py at exactly the pinned versions, in [`frictionless_venv`]: made with
/// `python3 -m venv` (Debian keeps that in `python3-venv`, installed when it fails) and filled
/// by pip from xtask/frictionless-requirements.txt. Skipped when the venv's `frictionless
/// --version` already says the pinned version and it was installed from the same pins.
fn ensure_frictionless() -> Result<(), String> {
    let venv = frictionless_venv();
    let frictionless = venv.join("bin/frictionless");
    // The pins the venv was last filled from: a change to any of them reinstalls.
    let installed_pins = venv.join("datavista-requirements.txt");
    let pinned_version = || {
        output(frictionless.to_str().unwrap_or_default(), &["--version"])
            .is_some_and(|v| v.trim() == FRICTIONLESS_VERSION)
    };
    if pinned_version()
        && std::fs::read_to_string(&installed_pins)
            .is_ok_and(|pins| pins == FRICTIONLESS_REQUIREMENTS)
    {
        return Ok(());
    }
    step(&format!(
        "installing frictionless {FRICTIONLESS_VERSION} (pip, pinned) into target/frictionless-venv (about 20 s)"
    ));
    let python = venv.join("bin/python");
    if !python.exists() {
        let make_venv = || run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        if make_venv().is_err() {
            // Debian's python3 has no ensurepip without python3-venv; the failed attempt
            // leaves a venv without pip behind.
            let _ = std::fs::remove_dir_all(&venv);
            apt_install(&["python3-venv"])?;
            make_venv()?;
        }
    }
    let requirements = crate::workspace().join("xtask/frictionless-requirements.txt");
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--require-virtualenv",
            "-r",
        ])
        .arg(&requirements))?;
    if !pinned_version() {
        return Err(format!(
            "{} --version does not say {FRICTIONLESS_VERSION} after the install",
            frictionless.display()
        ));
    }
    std::fs::write(&installed_pins, FRICTIONLESS_REQUIREMENTS)
        .map_err(|e| format!("cannot write {}: {e}", installed_pins.display()))
}

/// A command's standard output, or `None` when it cannot run or fails.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn registry_source(crate_dir: &str) -> Option<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))?;
    std::fs::read_dir(cargo_home.join("registry/src"))
        .ok()?
        .filter_map(|entry| entry.ok())
        .map(|index| index.path().join(crate_dir))
        .find(|path| path.join("Cargo.toml").exists())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
