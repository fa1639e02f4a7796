//! `authmux serve` as a child process.

use serde_json::Value;

/// A running `authmux serve` process, killed when dropped.
pub struct Process {
    pub child: std::process::Child,
    pub base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `authmux serve` (the binary `bin`) on a free loopback port with data in `data_dir`
/// and the given extra environment; returns once it listens.
pub fn spawn_serve(
    bin: &std::path::Path,
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
) -> Process {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("AUTHMUX_DATA_DIR", data_dir)
        .env("AUTHMUX_LOG_FORMAT", "json")
        .env_remove("AUTHMUX_DATABASE_URL")
        .env_remove("AUTHMUX_MASTER_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("the server logs").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(a) = v["fields"]["address"].as_str() {
            break a.to_owned();
        }
    };
    // Keep draining the log so the process never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Process {
        child,
        base: format!("http://{address}"),
    }
}
