//! A PostgreSQL database per test, dropped afterwards.

/// Drops a per-test database (closing its connections) from a thread of
/// its own, since `Drop` can't await.
pub fn drop_postgres_database(url: String) {
    let Ok(admin_url) = std::env::var("AUTHMUX_TEST_DATABASE_URL") else {
        return;
    };
    let Some((_, name)) = url.rsplit_once('/') else {
        return;
    };
    let name = name.to_owned();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use sea_orm::{ConnectionTrait, Database};
            if let Ok(admin) = Database::connect(&admin_url).await {
                let _ = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
                let _ = admin.close().await;
            }
        });
    })
    .join();
}

/// A fresh PostgreSQL database for one test, or `None` (with the reason
/// printed) when `AUTHMUX_TEST_DATABASE_URL` is unset.
pub async fn postgres_database() -> Option<String> {
    postgres_database_with("").await
}

/// Like [`postgres_database`], made with `options` after
/// `CREATE DATABASE name` (a locale, say).
pub async fn postgres_database_with(options: &str) -> Option<String> {
    let Ok(admin_url) = std::env::var("AUTHMUX_TEST_DATABASE_URL") else {
        eprintln!("skipped: AUTHMUX_TEST_DATABASE_URL is unset, so the PostgreSQL run is skipped");
        return None;
    };
    use sea_orm::{ConnectionTrait, Database};
    let admin = Database::connect(&admin_url)
        .await
        .expect("connect to AUTHMUX_TEST_DATABASE_URL");
    let name = format!("amx_t_{}", uuid::Uuid::now_v7().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name} {options}"))
        .await
        .expect("create a test database");
    let _ = admin.close().await;
    let (base, _) = admin_url.rsplit_once('/').expect("URL ends with /database");
    Some(format!("{base}/{name}"))
}
