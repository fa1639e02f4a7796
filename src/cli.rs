//! The command line: `serve`, `migrate`, `keys`.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::server;
use crate::vendors::{ByokConfig, VendorKind};

/// End-user authentication as a service.
#[derive(Debug, Parser)]
#[command(name = "authmux", version, about)]
pub struct Cli {
    /// A TOML or YAML file of settings (keys as the flags without dashes,
    /// e.g. `database_url`); the environment and flags override it.
    #[arg(long, env = "AUTHMUX_CONFIG", global = true)]
    config: Option<std::path::PathBuf>,
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serves gRPC and REST on one port (applies migrations first).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "AUTHMUX_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Seconds to keep serving after SIGTERM while reporting not ready.
        #[arg(long, env = "AUTHMUX_SHUTDOWN_DRAIN_SECS", default_value_t = 5)]
        shutdown_drain_secs: u64,
        /// Seconds in-flight requests get to finish once accepting stops.
        #[arg(long, env = "AUTHMUX_SHUTDOWN_GRACE_SECS", default_value_t = 25)]
        shutdown_grace_secs: u64,
        /// Apply pending migrations before serving (off when a deployment
        /// hook runs `authmux migrate`).
        #[arg(long, env = "AUTHMUX_MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
        migrate_on_start: bool,
    },
    /// Applies database migrations and exits.
    Migrate,
    /// Manages API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manages projects' own vendor credentials (bring your own key).
    Vendors {
        #[command(subcommand)]
        command: VendorsCommand,
    },
    /// Manages projects' settings.
    Projects {
        #[command(subcommand)]
        command: ProjectsCommand,
    },
    /// Manages projects' identity providers for OAuth / OpenID Connect
    /// sign-in.
    Oauth {
        #[command(subcommand)]
        command: OauthCommand,
    },
    /// Manages the keys that sign access tokens.
    SigningKeys {
        #[command(subcommand)]
        command: SigningKeysCommand,
    },
}

#[derive(Debug, Subcommand)]
enum VendorsCommand {
    /// Stores a project's own credentials for a vendor, sealed.
    Set {
        /// The project's name.
        #[arg(long)]
        project: String,
        /// clerk, workos or supabase.
        #[arg(long)]
        vendor: VendorKind,
        /// The secret (Clerk secret key, WorkOS API key, Supabase
        /// service-role key); prefer --secret-file.
        #[arg(
            long,
            conflicts_with = "secret_file",
            required_unless_present = "secret_file"
        )]
        secret: Option<String>,
        /// A file holding the secret.
        #[arg(long)]
        secret_file: Option<std::path::PathBuf>,
        /// Base URL (Clerk, WorkOS) or project URL (Supabase, required).
        #[arg(long)]
        url: Option<String>,
        /// WorkOS client id (required for WorkOS).
        #[arg(long)]
        client_id: Option<String>,
        /// The `iss` of the vendor's tokens, when not the URL.
        #[arg(long)]
        issuer: Option<String>,
    },
    /// Lists projects' vendor credentials, never their secrets.
    List,
    /// Forgets a project's credentials for a vendor.
    Remove {
        /// The project's name.
        #[arg(long)]
        project: String,
        /// clerk, workos or supabase.
        #[arg(long)]
        vendor: VendorKind,
    },
}

#[derive(Debug, Subcommand)]
enum OauthCommand {
    /// Stores (or replaces) a project's provider; the secret is sealed.
    Set {
        /// The project's name.
        #[arg(long)]
        project: String,
        /// google, microsoft, gitlab, github (presets), or any name with
        /// --issuer for another OpenID provider.
        #[arg(long)]
        provider: String,
        /// The client id registered at the provider.
        #[arg(long)]
        client_id: String,
        /// A file holding the client secret.
        #[arg(long)]
        client_secret_file: std::path::PathBuf,
        /// The OpenID issuer (required without a preset; GitHub: the web
        /// base URL, for GitHub Enterprise).
        #[arg(long)]
        issuer: Option<String>,
        /// GitHub's API base URL (GitHub Enterprise).
        #[arg(long)]
        api_url: Option<String>,
        /// Apple: the team id (the client secret file is then the .p8 key).
        #[arg(long, requires = "apple_key_id")]
        apple_team_id: Option<String>,
        /// Apple: the key id of that .p8 key.
        #[arg(long, requires = "apple_team_id")]
        apple_key_id: Option<String>,
        /// Scopes instead of the preset's (repeat, or space-separated).
        #[arg(long, num_args = 1..)]
        scopes: Vec<String>,
        /// A redirect URI the provider may send users back to (repeat).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
    },
    /// Lists projects' providers, never their secrets.
    List,
    /// Forgets a project's provider.
    Remove {
        /// The project's name.
        #[arg(long)]
        project: String,
        /// The provider's name.
        #[arg(long)]
        provider: String,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectsCommand {
    /// Gives a project its own request rate limit (all replicas together),
    /// or with --default puts it back on AUTHMUX_RATE_LIMIT_*.
    SetRateLimit {
        /// The project's name.
        #[arg(long)]
        project: String,
        /// Sustained requests per second.
        #[arg(long, required_unless_present = "default", conflicts_with = "default")]
        per_second: Option<u32>,
        /// Requests allowed at once; twice the rate when unset.
        #[arg(long, conflicts_with = "default")]
        burst: Option<u32>,
        /// Use the default limit again.
        #[arg(long)]
        default: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SigningKeysCommand {
    /// Makes a new current key; tokens signed by the old one stay valid
    /// until they expire. Running servers pick it up within a second.
    Rotate,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Creates a key (and the project if needed); prints the key last.
    Create {
        /// The project's name.
        #[arg(long)]
        project: String,
    },
    /// Lists keys, never their secrets.
    List,
    /// Revokes a key by its id.
    Revoke {
        /// The key id (`key_…`), as `keys list` shows it.
        key_id: String,
    },
}

/// The command line with the settings file named by `--config` or
/// `AUTHMUX_CONFIG` (if any) applied as the settings' defaults, so that
/// built-in defaults < file < environment < flags.
pub fn command_with_config_file(args: &[String]) -> anyhow::Result<clap::Command> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let from_args = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--config=").map(str::to_owned).or_else(|| {
            (a == "--config")
                .then(|| args.get(i + 1).cloned())
                .flatten()
        })
    });
    let Some(path) = from_args.or_else(|| std::env::var("AUTHMUX_CONFIG").ok()) else {
        return Ok(cmd);
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("config file {path}"))?;
    let value: serde_json::Value = if path.ends_with(".yaml") || path.ends_with(".yml") {
        serde_yaml_ng::from_str(&text)
            .with_context(|| format!("config file {path}: invalid YAML"))?
    } else {
        toml::from_str(&text).with_context(|| format!("config file {path}: invalid TOML"))?
    };
    let serde_json::Value::Object(map) = value else {
        anyhow::bail!("config file {path}: expected a table of settings");
    };
    let settings = setting_paths(&cmd, &[]);
    for (key, value) in map {
        let Some(at) = settings.iter().find(|(id, _)| *id == key).map(|(_, at)| at) else {
            anyhow::bail!("config file {path}: unknown setting {key:?}");
        };
        let text = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => anyhow::bail!(
                "config file {path}: {key} must be a string, number or boolean, not {other}"
            ),
        };
        cmd = with_default(cmd, at, &key, text);
    }
    Ok(cmd)
}

/// `cmd` with the argument `id` of the subcommand at `path` defaulting to
/// `value` (clap still prefers the environment and the flags).
fn with_default(cmd: clap::Command, path: &[String], id: &str, value: String) -> clap::Command {
    match path.split_first() {
        None => cmd.mut_arg(id, |a| a.default_value(value)),
        Some((sub, rest)) => cmd.mut_subcommand(sub, |s| with_default(s, rest, id, value)),
    }
}

/// (setting id, subcommand path) of every argument that has an env name:
/// the settings a file may give.
fn setting_paths(cmd: &clap::Command, path: &[String]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = cmd
        .get_arguments()
        .filter(|a| a.get_env().is_some())
        .map(|a| (a.get_id().as_str().to_owned(), path.to_vec()))
        .filter(|(id, _)| id != "config")
        .collect();
    for sub in cmd.get_subcommands() {
        let mut at = path.to_vec();
        at.push(sub.get_name().to_owned());
        out.extend(setting_paths(sub, &at));
    }
    out
}

impl Cli {
    /// Runs the command.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve {
                listen,
                shutdown_drain_secs,
                shutdown_grace_secs,
                migrate_on_start,
            } => {
                let timing = server::ShutdownTiming {
                    drain: std::time::Duration::from_secs(shutdown_drain_secs),
                    grace: std::time::Duration::from_secs(shutdown_grace_secs),
                };
                serve(&self.settings, listen, timing, migrate_on_start).await
            }
            Command::Migrate => {
                self.settings.store().await?.migrate().await?;
                println!("migrations applied");
                Ok(())
            }
            Command::Vendors { command } => {
                let domain = self.settings.domain().await?;
                match command {
                    VendorsCommand::Set {
                        project,
                        vendor,
                        secret,
                        secret_file,
                        url,
                        client_id,
                        issuer,
                    } => {
                        let secret = match (secret, secret_file) {
                            (Some(s), _) => s,
                            (None, Some(path)) => {
                                std::fs::read_to_string(&path).with_context(|| {
                                    format!("--secret-file: cannot read {}", path.display())
                                })?
                            }
                            (None, None) => anyhow::bail!("--secret or --secret-file is required"),
                        };
                        let config = ByokConfig {
                            secret: secret.trim().to_owned(),
                            url,
                            client_id,
                            issuer,
                        };
                        domain
                            .set_vendor_credentials(&project, vendor, config)
                            .await?;
                        println!("stored {vendor} credentials for project {project}");
                    }
                    VendorsCommand::List => {
                        println!(
                            "{:<20}  {:<9}  {:<40}  {:<20}  updated",
                            "project", "vendor", "url", "client id"
                        );
                        for c in domain.list_vendor_credentials().await? {
                            println!(
                                "{:<20}  {:<9}  {:<40}  {:<20}  {}",
                                c.project,
                                c.vendor.as_str(),
                                c.url.unwrap_or_else(|| "(default)".into()),
                                c.client_id.unwrap_or_default(),
                                format_ms(c.updated_at)
                            );
                        }
                    }
                    VendorsCommand::Remove { project, vendor } => {
                        domain.remove_vendor_credentials(&project, vendor).await?;
                        println!("removed {vendor} credentials of project {project}");
                    }
                }
                Ok(())
            }
            Command::Oauth { command } => {
                let domain = self.settings.domain().await?;
                match command {
                    OauthCommand::Set {
                        project,
                        provider,
                        client_id,
                        client_secret_file,
                        issuer,
                        api_url,
                        apple_team_id,
                        apple_key_id,
                        scopes,
                        redirect_uris,
                    } => {
                        let client_secret = std::fs::read_to_string(&client_secret_file)
                            .with_context(|| {
                                format!(
                                    "--client-secret-file: cannot read {}",
                                    client_secret_file.display()
                                )
                            })?;
                        let input = crate::domain::SetProvider {
                            client_id,
                            client_secret,
                            issuer,
                            scopes: scopes
                                .iter()
                                .flat_map(|s| s.split_whitespace())
                                .map(str::to_owned)
                                .collect(),
                            redirect_uris,
                            api_url,
                            apple: apple_team_id.zip(apple_key_id).map(|(team_id, key_id)| {
                                crate::oauth::AppleKey { team_id, key_id }
                            }),
                        };
                        domain
                            .set_oauth_provider(&project, &provider, input)
                            .await?;
                        println!("stored provider {provider} for project {project}");
                    }
                    OauthCommand::List => {
                        println!(
                            "{:<20}  {:<12}  {:<6}  {:<40}  {:<24}  redirect URIs",
                            "project", "provider", "kind", "issuer", "client id"
                        );
                        for (project, p) in domain.all_oauth_providers().await? {
                            println!(
                                "{:<20}  {:<12}  {:<6}  {:<40}  {:<24}  {}",
                                project,
                                p.provider,
                                p.kind.as_str(),
                                p.issuer,
                                p.client_id,
                                p.redirect_uris.join(" ")
                            );
                        }
                    }
                    OauthCommand::Remove { project, provider } => {
                        domain.remove_oauth_provider(&project, &provider).await?;
                        println!("removed provider {provider} of project {project}");
                    }
                }
                Ok(())
            }
            Command::SigningKeys {
                command: SigningKeysCommand::Rotate,
            } => {
                let store = self.settings.store().await?;
                store.migrate().await?;
                let master = self.settings.master_key()?;
                let kid = self
                    .settings
                    .keyring(&store, &master)
                    .await?
                    .rotate()
                    .await?;
                println!(
                    "new signing key {kid} ({})",
                    self.settings.tokens.signing_alg.as_str()
                );
                Ok(())
            }
            Command::Projects { command } => {
                let domain = self.settings.domain().await?;
                match command {
                    ProjectsCommand::SetRateLimit {
                        project,
                        per_second,
                        burst,
                        default: _,
                    } => {
                        let limit = per_second.map(|r| crate::domain::RateLimit {
                            per_second: r,
                            burst: burst.unwrap_or(r.saturating_mul(2)),
                        });
                        domain.set_rate_limit(&project, limit).await?;
                        match limit {
                            Some(l) => println!(
                                "project {project}: {} requests per second, burst {}",
                                l.per_second, l.burst
                            ),
                            None => println!("project {project}: the default rate limit"),
                        }
                    }
                }
                Ok(())
            }
            Command::Keys { command } => {
                let domain = self.settings.domain().await?;
                match command {
                    KeysCommand::Create { project } => {
                        let key = domain.create_api_key(&project).await?;
                        println!("project: {} ({})", key.project.name, key.project.id);
                        println!("key id: {}", key.key_id);
                        println!("{}", key.key);
                    }
                    KeysCommand::List => {
                        println!(
                            "{:<36}  {:<20}  {:<10}  {:<24}  status",
                            "key id", "project", "prefix", "created"
                        );
                        for k in domain.list_api_keys().await? {
                            println!(
                                "{:<36}  {:<20}  {:<10}  {:<24}  {}",
                                k.key_id,
                                k.project,
                                k.prefix,
                                format_ms(k.created_at),
                                match k.revoked_at {
                                    Some(at) => format!("revoked {}", format_ms(at)),
                                    None => "active".to_owned(),
                                }
                            );
                        }
                    }
                    KeysCommand::Revoke { key_id } => {
                        domain.revoke_api_key(&key_id).await?;
                        println!("revoked {key_id}");
                    }
                }
                Ok(())
            }
        }
    }
}

fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

async fn serve(
    settings: &Settings,
    listen: SocketAddr,
    timing: server::ShutdownTiming,
    migrate: bool,
) -> anyhow::Result<()> {
    let domain = settings.domain_with(migrate).await?;
    if let Some(first) = domain.bootstrap().await? {
        println!(
            "created project \"default\" with API key (shown once, keep it):\n{}",
            first.key
        );
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("AUTHMUX_LISTEN: cannot listen on {listen}"))?;
    let app = server::app_with(domain, settings.limits()).await?;
    tracing::info!(address = %listener.local_addr()?, "authmux listening (gRPC and REST)");
    server::serve_with(listener, app, shutdown_signal(), timing).await?;
    tracing::info!("authmux stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
