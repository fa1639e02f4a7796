//! Python virtualenvs for tests that use a real Python library on the
//! other side (the gRPC example client, the Standard Webhooks verifier).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One venv is made at a time (tests in one binary run in parallel).
static MAKING: Mutex<()> = Mutex::new(());

/// A virtualenv `target/<name>` with `requirements` installed, made on
/// first use; `None` (with the reason printed) when Python with `venv` is
/// missing, unless `AUTHMUX_REQUIRE_PYTHON` is set (then it fails).
/// Returns the venv's `python`.
pub fn venv(root: &Path, name: &str, requirements: &Path) -> Option<PathBuf> {
    let _one = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let venv = root.join("target").join(name);
    let py = venv.join("bin/python");
    if !py.exists() {
        let made = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status();
        if !made.is_ok_and(|s| s.success()) {
            assert!(
                std::env::var_os("AUTHMUX_REQUIRE_PYTHON").is_none(),
                "AUTHMUX_REQUIRE_PYTHON is set but python3 -m venv does not work"
            );
            eprintln!("skipping: python3 with venv is not available");
            return None;
        }
    }
    let out = std::process::Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(requirements)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(py)
}
