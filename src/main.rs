//! The `authmux` binary.

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    // The settings file goes into the environment before any thread runs.
    let args: Vec<String> = std::env::args().collect();
    if let Err(err) = authmux::cli::apply_config_file(&args) {
        eprintln!("error: {err:#}");
        return std::process::ExitCode::FAILURE;
    }
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(run()),
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> std::process::ExitCode {
    let filter = EnvFilter::try_from_env("AUTHMUX_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AUTHMUX_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    match authmux::cli::Cli::parse().run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
