//! A real authmux server on 127.0.0.1:0, over SQLite or a PostgreSQL
//! database of its own, with vendor emulators when a test asks for them.

use std::sync::Arc;
use std::time::Duration;

use authmux::config::Settings;
use authmux::domain::Domain;
use authmux::pb::DESCRIPTOR_SET;
use authmux::transcode::routes::{HttpRoute, pool, routes};
use authmux::vendors::VendorKind;
use tokio::sync::oneshot;
use tonic::transport::Channel;

use crate::postgres::{drop_postgres_database, postgres_database};

/// Which database a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running server.
pub struct Server {
    pub base: String,
    pub key: String,
    pub domain: Arc<Domain>,
    pub http: reqwest::Client,
    pub channel: Channel,
    pub database_url: String,
    pub(crate) data_dir: std::path::PathBuf,
    /// The vendor new users go to when a test names none.
    pub vendor: VendorKind,
    /// The vendor's emulator, when one runs.
    pub emulator: Option<crate::emulators::Running>,
    /// Emulators of the other configured vendors.
    pub other_emulators: Vec<(VendorKind, crate::emulators::Running)>,
    /// The Clerk emulator's signing keys, when it runs.
    pub clerk_keys: Option<crate::emulators::clerk::Keys>,
    /// The Supabase emulator's keys and sessions, when it runs.
    pub supabase: Option<crate::emulators::supabase::Handle>,
    /// The WorkOS emulator's sessions, when it runs.
    pub workos: Option<crate::emulators::workos::Handle>,
    pub(crate) routes: Vec<HttpRoute>,
    pub(crate) shutdown: Option<oneshot::Sender<()>>,
    pub(crate) _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if self.database_url.starts_with("postgres") {
            drop_postgres_database(self.database_url.clone());
        }
    }
}

impl Server {
    /// Starts a server, or `None` when the backend is not available here.
    pub async fn start(backend: Backend) -> Option<Server> {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server with adjusted settings.
    pub async fn start_with(
        backend: Backend,
        adjust: impl FnOnce(&mut Settings),
    ) -> Option<Server> {
        crate::logs::capture();
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("authmux.db").display()),
            Backend::Postgres => postgres_database().await?,
        };
        let mut settings = Settings::new(dir.path());
        settings.store.database_url = Some(database_url.clone().into());
        adjust(&mut settings);
        Some(Self::start_on(dir, settings).await)
    }

    /// Starts a server whose new users go to `vendor`, backed by its
    /// emulator.
    pub async fn start_vendor(backend: Backend, vendor: VendorKind) -> Option<Server> {
        Self::start_vendors(backend, &[vendor], |_| {}).await
    }

    /// Starts a server with every vendor in `vendors` configured against
    /// its own emulator; the first is where tests' new users go.
    pub async fn start_vendors(
        backend: Backend,
        vendors: &[VendorKind],
        adjust: impl FnOnce(&mut Settings),
    ) -> Option<Server> {
        let mut started = Vec::new();
        let (mut keys, mut supabase, mut workos) = (None, None, None);
        for vendor in vendors {
            match *vendor {
                VendorKind::Native => {}
                VendorKind::Clerk => {
                    let (running, k) = crate::emulators::clerk::start_with_keys().await;
                    keys = Some(k);
                    started.push((*vendor, running));
                }
                VendorKind::Supabase => {
                    let (running, h) = crate::emulators::supabase::start().await;
                    supabase = Some(h);
                    started.push((*vendor, running));
                }
                VendorKind::Workos => {
                    let (running, h) = crate::emulators::workos::start().await;
                    workos = Some(h);
                    started.push((*vendor, running));
                }
            }
        }
        let bases: Vec<(VendorKind, String)> = started
            .iter()
            .map(|(v, r)| (*v, r.base_url.clone()))
            .collect();
        let mut s = Self::start_with(backend, |c| {
            for (vendor, base) in &bases {
                match *vendor {
                    VendorKind::Clerk => {
                        c.clerk.clerk_secret_key = Some(crate::emulators::clerk::SECRET_KEY.into());
                        c.clerk.clerk_base_url = base.clone();
                    }
                    VendorKind::Supabase => {
                        c.supabase.supabase_url = Some(base.clone());
                        c.supabase.supabase_service_role_key =
                            Some(crate::emulators::supabase::SERVICE_ROLE_KEY.into());
                    }
                    VendorKind::Workos => {
                        c.workos.workos_api_key = Some(crate::emulators::workos::API_KEY.into());
                        c.workos.workos_client_id =
                            Some(crate::emulators::workos::CLIENT_ID.into());
                        c.workos.workos_base_url = base.clone();
                    }
                    _ => {}
                }
            }
            if !bases.is_empty() {
                c.vendor_policy.vendor_timeout_ms = 2_000;
                c.vendor_policy.jwks_refetch_ms = 0;
                c.tokens.refresh_cooldown_secs = 0;
                // Probes would add requests the tests count; one test
                // turns them on.
                c.vendor_policy.vendor_probe_ms = 0;
            }
            adjust(c);
        })
        .await?;
        s.vendor = vendors[0];
        let mut started = started.into_iter();
        s.emulator = started.next().map(|(_, r)| r);
        s.other_emulators = started.collect();
        s.clerk_keys = keys;
        s.supabase = supabase;
        s.workos = workos;
        Some(s)
    }

    /// The vendor new users go to.
    pub fn vendor(&self) -> VendorKind {
        self.vendor
    }

    /// The project the test's API key belongs to.
    pub async fn project(&self) -> authmux::domain::Project {
        self.domain
            .authenticate(Some(&format!("Bearer {}", self.key)))
            .await
            .unwrap()
    }

    /// Starts a server with the given settings, keeping `dir` alive.
    pub async fn start_on(dir: tempfile::TempDir, settings: Settings) -> Server {
        let database_url = settings.database_url().unwrap();
        let domain = settings.domain().await.expect("domain");
        let key = domain.create_api_key("tests").await.expect("key").key;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = authmux::server::app_with(domain.clone(), settings.limits())
            .await
            .expect("app");
        let (tx, rx) = oneshot::channel();
        tokio::spawn(authmux::server::serve(listener, app, async {
            let _ = rx.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        let routes = routes(&pool(DESCRIPTOR_SET).unwrap()).unwrap();
        Server {
            base: format!("http://{addr}"),
            key,
            domain,
            http: reqwest::Client::new(),
            channel,
            database_url,
            data_dir: dir.path().to_owned(),
            vendor: VendorKind::Native,
            emulator: None,
            other_emulators: Vec::new(),
            clerk_keys: None,
            supabase: None,
            workos: None,
            routes,
            shutdown: Some(tx),
            _dir: dir,
        }
    }

    /// The server's data directory (SQLite file, master key).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// A key for another project.
    pub async fn key_for(&self, project: &str) -> String {
        self.domain.create_api_key(project).await.unwrap().key
    }

    /// The server's OpenAPI document (`/v1/openapi.json`).
    pub async fn openapi(&self) -> serde_json::Value {
        self.http
            .get(format!("{}/v1/openapi.json", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}
