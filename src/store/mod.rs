//! Persistence: sea-orm entities and the queries the layers above need.
//! Knows nothing of proto or HTTP; every query is scoped to a project.

pub mod byok;
pub mod consent;
pub mod events;
// The table models: sea-orm derives most items, and each column is
// described by the migration that made it (`migrations/`).
#[allow(missing_docs)]
pub mod entity;
pub mod idempotency;
pub mod native;
pub mod oauth;
pub mod privacy;
pub mod projects;
pub mod sessions;
pub mod signing_keys;
pub mod users;
pub mod webhooks;

use std::sync::Arc;

use crate::clock::Clock;
use std::time::Duration;

use authmux_migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, Select, SqlErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row with the same unique key already exists.
    #[error("duplicate row: {0}")]
    Duplicate(String),
    /// Any other database failure.
    #[error("database error: {0}")]
    Db(DbErr),
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(msg)) => StoreError::Duplicate(msg),
            _ => StoreError::Db(err),
        }
    }
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A select whose filter names a primary or unique key, so that it finds
/// at most one row.
pub(crate) trait ByKey<E: EntityTrait> {
    /// The row, if any: sea-orm's `one` without its `LIMIT ?`.
    ///
    /// SQLite (3.47 and later) reads a LIMIT that is a bound parameter
    /// while planning, and so marks the statement to be parsed and planned
    /// again whenever that parameter is bound: every `one` query was
    /// prepared anew on each run. Here the key bounds the result instead,
    /// and the statement cached by the connection is reused as it is.
    async fn by_key<C: ConnectionTrait>(self, db: &C) -> Result<Option<E::Model>, DbErr>;
}

impl<E: EntityTrait> ByKey<E> for Select<E> {
    async fn by_key<C: ConnectionTrait>(self, db: &C) -> Result<Option<E::Model>, DbErr> {
        let mut rows = self.all(db).await?;
        debug_assert!(rows.len() <= 1, "a select by key found {} rows", rows.len());
        Ok(rows.pop())
    }
}

/// The database behind authmux: SQLite (embedded default) or PostgreSQL.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    clock: Arc<Clock>,
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`). SQLite files are
    /// created when missing and run in WAL mode with a busy timeout.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.sqlx_logging(false)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(10))
            .map_sqlx_sqlite_opts(|o| {
                o.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
        if url.starts_with("sqlite:") {
            opts.max_connections(8).min_connections(1);
        } else {
            opts.max_connections(16);
        }
        let db = Database::connect(opts).await?;
        Ok(Store {
            db,
            clock: Arc::default(),
        })
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> StoreResult<()> {
        Migrator::up(&self.db, None).await?;
        Ok(())
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> StoreResult<()> {
        self.db.execute_unprepared("SELECT 1").await?;
        Ok(())
    }

    /// Begins a transaction that writes: on SQLite it takes the write lock
    /// at once (`BEGIN IMMEDIATE`), so that a read-then-write waits for
    /// other writers (busy timeout) instead of failing with "database is
    /// locked" when it upgrades; on PostgreSQL it is a plain transaction.
    pub(crate) async fn write_txn(&self) -> StoreResult<DatabaseTransaction> {
        Ok(self
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?)
    }

    /// Begins a transaction that only reads, all of it one moment of the
    /// database: `REPEATABLE READ` on PostgreSQL; on SQLite (WAL) a
    /// deferred transaction, whose first read fixes what it sees.
    pub(crate) async fn snapshot(&self) -> StoreResult<DatabaseTransaction> {
        let postgres = self.db.get_database_backend() == sea_orm::DbBackend::Postgres;
        Ok(self
            .db
            .begin_with_config(
                postgres.then_some(sea_orm::IsolationLevel::RepeatableRead),
                postgres.then_some(sea_orm::AccessMode::ReadOnly),
            )
            .await?)
    }

    /// The underlying connection, for queries in this module tree.
    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }
}

impl Store {
    /// The clock every timestamp is read from, shared with the domain
    /// (tests move it).
    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    /// Now, Unix milliseconds (the store's time unit), from its clock.
    pub fn now_millis(&self) -> i64 {
        self.clock.now_millis()
    }
}
