//! The `authmux` binary.

use clap::FromArgMatches;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: every request allocates (and
/// frees, often on another thread) dozens of small blocks, which glibc's
/// malloc serves markedly slower.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // The settings file gives the settings' defaults.
    let args: Vec<String> = std::env::args().collect();
    let cli = match authmux::cli::command_with_config_file(&args) {
        Ok(cmd) => {
            let matches = cmd.get_matches_from(&args);
            authmux::cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(run(cli)),
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: authmux::cli::Cli) -> std::process::ExitCode {
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
    match cli.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
