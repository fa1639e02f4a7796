//! Sessions, their refresh tokens and failed sign-in attempts.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::entity::{auth_failures, events, pins, refresh_tokens, sessions, users};
use super::{ByKey, Store, StoreResult};

/// The outcome of [`Store::reserve_attempt`].
#[derive(Debug, PartialEq, Eq)]
pub enum Reservation {
    /// The attempt is counted; check the credential.
    Reserved,
    /// The limit is reached; a slot frees in this many milliseconds.
    Throttled {
        /// Milliseconds until the window frees a slot.
        retry_after_ms: i64,
    },
    /// The user no longer exists.
    NoUser,
}

/// How a rotation of a refresh token ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The old token is now rotated and the new one current.
    Rotated,
    /// Another request rotated the old token first.
    Lost,
    /// The session was revoked (or moved on) meanwhile.
    SessionEnded,
}

/// What became of a new session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStored {
    /// Stored.
    Stored,
    /// Not stored: the user was deleted.
    NoUser,
    /// Not stored: the user's password changed since it was checked.
    PasswordChanged,
}

impl Store {
    /// Inserts a new session with its first refresh token and, for a
    /// vendor session, its pin — only while the user exists and, for a
    /// sign-in that checked a password, while the password is the version
    /// it checked (`password_version`). The user's row is share-locked on
    /// PostgreSQL (SQLite serialises writers), so a concurrent delete or
    /// password change either runs first (and nothing is stored) or sees,
    /// and revokes, this session.
    pub async fn insert_session(
        &self,
        session: sessions::Model,
        refresh: refresh_tokens::Model,
        pin: Option<pins::Model>,
        password_version: Option<i64>,
        announce: Vec<events::Model>,
    ) -> StoreResult<SessionStored> {
        let txn = self.write_txn().await?;
        let user = users::Entity::find_by_id(session.user_id.clone())
            .filter(users::Column::ProjectId.eq(session.project_id.clone()))
            .lock_shared()
            .by_key(&txn)
            .await?;
        let Some(user) = user else {
            txn.rollback().await?;
            return Ok(SessionStored::NoUser);
        };
        if password_version.is_some_and(|v| v != user.password_version) {
            txn.rollback().await?;
            return Ok(SessionStored::PasswordChanged);
        }
        if let Some(pin) = pin {
            pins::Entity::insert(pin.into_active_model())
                .exec(&txn)
                .await?;
        }
        sessions::Entity::insert(session.into_active_model())
            .exec(&txn)
            .await?;
        refresh_tokens::Entity::insert(refresh.into_active_model())
            .exec(&txn)
            .await?;
        super::events::append(&txn, announce).await?;
        txn.commit().await?;
        Ok(SessionStored::Stored)
    }

    /// One session of a project.
    pub async fn session(
        &self,
        project_id: &str,
        session_id: &str,
    ) -> StoreResult<Option<sessions::Model>> {
        Ok(sessions::Entity::find_by_id(session_id.to_owned())
            .filter(sessions::Column::ProjectId.eq(project_id))
            .by_key(self.db())
            .await?)
    }

    /// The sessions with these ids, whatever their project (the caller
    /// checks it).
    pub async fn sessions_by_ids(&self, ids: Vec<String>) -> StoreResult<Vec<sessions::Model>> {
        Ok(sessions::Entity::find()
            .filter(sessions::Column::Id.is_in(ids))
            .all(self.db())
            .await?)
    }

    /// The refresh token with this hash, whatever its project.
    pub async fn refresh_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<refresh_tokens::Model>> {
        Ok(refresh_tokens::Entity::find_by_id(token_hash.to_owned())
            .by_key(self.db())
            .await?)
    }

    /// Marks `old_hash` rotated, inserts `new` as current and moves the
    /// session's last issuance from `issued_before` to `now`, with the
    /// events announcing it, all or nothing.
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new: refresh_tokens::Model,
        issued_before: i64,
        now: i64,
        announce: Vec<events::Model>,
    ) -> StoreResult<Rotation> {
        let txn = self.write_txn().await?;
        let rotated = refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::RotatedAt, Expr::value(now))
            .filter(refresh_tokens::Column::TokenHash.eq(old_hash))
            .filter(refresh_tokens::Column::RotatedAt.is_null())
            .exec(&txn)
            .await?;
        let moved = sessions::Entity::update_many()
            .col_expr(sessions::Column::LastIssuedAt, Expr::value(now))
            .filter(sessions::Column::Id.eq(new.session_id.clone()))
            .filter(sessions::Column::LastIssuedAt.eq(issued_before))
            .filter(sessions::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        if rotated.rows_affected != 1 || moved.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(if rotated.rows_affected != 1 {
                Rotation::Lost
            } else {
                Rotation::SessionEnded
            });
        }
        refresh_tokens::Entity::insert(new.into_active_model())
            .exec(&txn)
            .await?;
        super::events::append(&txn, announce).await?;
        txn.commit().await?;
        Ok(Rotation::Rotated)
    }

    /// Replaces the sealed vendor credential of a session.
    pub async fn set_vendor_credential(
        &self,
        session_id: &str,
        sealed: Option<Vec<u8>>,
    ) -> StoreResult<()> {
        sessions::Entity::update_many()
            .col_expr(sessions::Column::VendorCredential, Expr::value(sealed))
            .filter(sessions::Column::Id.eq(session_id))
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// Revokes one session, with the events `announce` makes of its row
    /// in the same transaction; `None` when the project has no such
    /// session, `Some(false)` when it was already revoked (and no event).
    pub async fn revoke_session(
        &self,
        project_id: &str,
        session_id: &str,
        now: i64,
        announce: impl FnOnce(&sessions::Model) -> Vec<events::Model>,
    ) -> StoreResult<Option<bool>> {
        let txn = self.write_txn().await?;
        let res = sessions::Entity::update_many()
            .col_expr(sessions::Column::RevokedAt, Expr::value(now))
            .col_expr(sessions::Column::VendorPending, Expr::value(true))
            .filter(sessions::Column::ProjectId.eq(project_id))
            .filter(sessions::Column::Id.eq(session_id))
            .filter(sessions::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        let row = sessions::Entity::find_by_id(session_id.to_owned())
            .filter(sessions::Column::ProjectId.eq(project_id))
            .by_key(&txn)
            .await?;
        let revoked = match row {
            Some(row) if res.rows_affected == 1 => {
                super::events::append(&txn, announce(&row)).await?;
                Some(true)
            }
            Some(_) => Some(false),
            None => None,
        };
        txn.commit().await?;
        Ok(revoked)
    }

    /// Revokes every live session of a user but `except`, with the events
    /// `announce` makes of their ids in the same transaction; returns the
    /// ids.
    pub async fn revoke_user_sessions(
        &self,
        project_id: &str,
        user_id: &str,
        except: Option<&str>,
        now: i64,
        announce: impl FnOnce(&[String]) -> Vec<events::Model>,
    ) -> StoreResult<Vec<String>> {
        let txn = self.write_txn().await?;
        let ids = revoke_user_sessions_in(&txn, project_id, user_id, except, now).await?;
        super::events::append(&txn, announce(&ids)).await?;
        txn.commit().await?;
        Ok(ids)
    }

    /// A user's sessions revoked here whose vendor side is not ended yet.
    pub async fn vendor_pending_sessions(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<String>> {
        Ok(sessions::Entity::find()
            .select_only()
            .column(sessions::Column::Id)
            .filter(sessions::Column::ProjectId.eq(project_id))
            .filter(sessions::Column::UserId.eq(user_id))
            .filter(sessions::Column::VendorPending.eq(true))
            .into_tuple()
            .all(self.db())
            .await?)
    }

    /// Records that a session's vendor side is ended.
    pub async fn vendor_ended(&self, project_id: &str, session_id: &str) -> StoreResult<()> {
        sessions::Entity::update_many()
            .col_expr(sessions::Column::VendorPending, Expr::value(false))
            .filter(sessions::Column::ProjectId.eq(project_id))
            .filter(sessions::Column::Id.eq(session_id))
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// A user's live sessions, newest first.
    pub async fn active_sessions(
        &self,
        project_id: &str,
        user_id: &str,
        now: i64,
    ) -> StoreResult<Vec<sessions::Model>> {
        Ok(sessions::Entity::find()
            .filter(sessions::Column::ProjectId.eq(project_id))
            .filter(sessions::Column::UserId.eq(user_id))
            .filter(sessions::Column::RevokedAt.is_null())
            .filter(sessions::Column::ExpiresAt.gt(now))
            .order_by_desc(sessions::Column::Id)
            .all(self.db())
            .await?)
    }

    /// Ids of sessions revoked at or after `since` that have not expired by
    /// `now`: what a verifier must refuse.
    pub async fn revoked_session_ids(&self, since: i64, now: i64) -> StoreResult<Vec<String>> {
        Ok(sessions::Entity::find()
            .select_only()
            .column(sessions::Column::Id)
            .filter(sessions::Column::RevokedAt.gte(since))
            .filter(sessions::Column::ExpiresAt.gt(now))
            .into_tuple()
            .all(self.db())
            .await?)
    }

    /// Reserves one credential attempt for a user: within one write
    /// transaction (the user's row locked on PostgreSQL, the write lock
    /// held on SQLite) counts the attempts of this `kind` in the window and,
    /// below `max`, records this one as a failure. Concurrent attempts are
    /// thus counted before any of them is checked; the caller removes the
    /// row with [`Store::release_attempt`] when the credential was right.
    pub async fn reserve_attempt(
        &self,
        row: auth_failures::Model,
        window_ms: i64,
        max: usize,
    ) -> StoreResult<Reservation> {
        let txn = self.write_txn().await?;
        let user = users::Entity::find_by_id(row.user_id.clone())
            .filter(users::Column::ProjectId.eq(row.project_id.clone()))
            .lock_exclusive()
            .by_key(&txn)
            .await?;
        if user.is_none() {
            txn.rollback().await?;
            return Ok(Reservation::NoUser);
        }
        let times: Vec<i64> = auth_failures::Entity::find()
            .select_only()
            .column(auth_failures::Column::At)
            .filter(auth_failures::Column::ProjectId.eq(row.project_id.clone()))
            .filter(auth_failures::Column::UserId.eq(row.user_id.clone()))
            .filter(auth_failures::Column::Kind.eq(row.kind.clone()))
            .filter(auth_failures::Column::At.gt(row.at - window_ms))
            .order_by_asc(auth_failures::Column::At)
            .into_tuple()
            .all(&txn)
            .await?;
        if times.len() >= max {
            txn.rollback().await?;
            // A slot frees when the oldest attempt that keeps the count at
            // the limit leaves the window.
            let oldest = times[times.len() - max];
            return Ok(Reservation::Throttled {
                retry_after_ms: (oldest + window_ms - row.at).max(0),
            });
        }
        auth_failures::Entity::insert(row.into_active_model())
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(Reservation::Reserved)
    }

    /// Whether a slot of `kind` reserved for the user since `since` (Unix
    /// ms) is still held.
    pub async fn slot_held(
        &self,
        project_id: &str,
        user_id: &str,
        kind: &str,
        since: i64,
    ) -> StoreResult<bool> {
        let held: Vec<String> = auth_failures::Entity::find()
            .select_only()
            .column(auth_failures::Column::Id)
            .filter(auth_failures::Column::ProjectId.eq(project_id))
            .filter(auth_failures::Column::UserId.eq(user_id))
            .filter(auth_failures::Column::Kind.eq(kind))
            .filter(auth_failures::Column::At.gt(since))
            .into_tuple()
            .all(self.db())
            .await?;
        Ok(!held.is_empty())
    }

    /// Moves a reserved slot's time to `at`, keeping it held for another
    /// window from then; a slot released meanwhile stays released.
    pub async fn renew_attempt(&self, id: &str, at: i64) -> StoreResult<()> {
        auth_failures::Entity::update_many()
            .col_expr(auth_failures::Column::At, Expr::value(at))
            .filter(auth_failures::Column::Id.eq(id))
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// Removes a reserved attempt (the credential was right).
    pub async fn release_attempt(&self, id: &str) -> StoreResult<()> {
        auth_failures::Entity::delete_by_id(id.to_owned())
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// Deletes failed sign-ins older than `before`.
    pub async fn purge_auth_failures(&self, before: i64) -> StoreResult<u64> {
        Ok(auth_failures::Entity::delete_many()
            .filter(auth_failures::Column::At.lt(before))
            .exec(self.db())
            .await?
            .rows_affected)
    }
}

/// Every session of a user still stored, live or not, oldest first, read
/// through `c` (the export reads them in its snapshot).
pub(super) async fn user_sessions_in(
    c: &impl ConnectionTrait,
    project_id: &str,
    user_id: &str,
) -> StoreResult<Vec<sessions::Model>> {
    Ok(sessions::Entity::find()
        .filter(sessions::Column::ProjectId.eq(project_id))
        .filter(sessions::Column::UserId.eq(user_id))
        .order_by_asc(sessions::Column::Id)
        .all(c)
        .await?)
}

/// Revokes every live session of a user but `except` within `txn`;
/// returns their ids.
pub(super) async fn revoke_user_sessions_in(
    txn: &DatabaseTransaction,
    project_id: &str,
    user_id: &str,
    except: Option<&str>,
    now: i64,
) -> StoreResult<Vec<String>> {
    let mut q = sessions::Entity::find()
        .select_only()
        .column(sessions::Column::Id)
        .filter(sessions::Column::ProjectId.eq(project_id))
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::ExpiresAt.gt(now));
    if let Some(except) = except {
        q = q.filter(sessions::Column::Id.ne(except));
    }
    // Locked on PostgreSQL: a concurrent revoke-all waits, then finds
    // these rows no longer live, so each session is reported once.
    let ids: Vec<String> = q.lock_exclusive().into_tuple().all(txn).await?;
    if !ids.is_empty() {
        sessions::Entity::update_many()
            .col_expr(sessions::Column::RevokedAt, Expr::value(now))
            .col_expr(sessions::Column::VendorPending, Expr::value(true))
            .filter(sessions::Column::Id.is_in(ids.clone()))
            .filter(sessions::Column::RevokedAt.is_null())
            .exec(txn)
            .await?;
    }
    Ok(ids)
}

impl Store {
    /// Deletes sessions that expired before `before`, with their refresh
    /// tokens and pins; returns how many sessions went.
    pub async fn purge_expired_sessions(&self, before: i64) -> StoreResult<u64> {
        let txn = self.write_txn().await?;
        let ids: Vec<String> = sessions::Entity::find()
            .select_only()
            .column(sessions::Column::Id)
            .filter(sessions::Column::ExpiresAt.lt(before))
            .limit(PURGE_BATCH)
            .into_tuple()
            .all(&txn)
            .await?;
        if ids.is_empty() {
            txn.rollback().await?;
            return Ok(0);
        }
        refresh_tokens::Entity::delete_many()
            .filter(refresh_tokens::Column::SessionId.is_in(ids.clone()))
            .exec(&txn)
            .await?;
        pins::Entity::delete_many()
            .filter(pins::Column::Kind.eq("session"))
            .filter(pins::Column::ResourceId.is_in(ids.clone()))
            .exec(&txn)
            .await?;
        let res = sessions::Entity::delete_many()
            .filter(sessions::Column::Id.is_in(ids))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(res.rows_affected)
    }

    /// Deletes records of used TOTP codes older than `before`.
    pub async fn purge_totp_uses(&self, before: i64) -> StoreResult<u64> {
        use super::entity::totp_uses;
        Ok(totp_uses::Entity::delete_many()
            .filter(totp_uses::Column::UsedAt.lt(before))
            .exec(self.db())
            .await?
            .rows_affected)
    }
}

/// The most expired sessions one purge transaction deletes.
const PURGE_BATCH: u64 = 1_000;
