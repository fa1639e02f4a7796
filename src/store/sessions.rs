//! Sessions, their refresh tokens and failed sign-in attempts.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};

use super::entity::{auth_failures, pins, refresh_tokens, sessions};
use super::{Store, StoreResult};

/// How a rotation of a refresh token ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The old token is now rotated and the new one current.
    Rotated,
    /// The old token was already rotated (or the session moved on).
    Lost,
}

impl Store {
    /// Inserts a new session with its first refresh token and, for a
    /// vendor session, its pin.
    pub async fn insert_session(
        &self,
        session: sessions::Model,
        refresh: refresh_tokens::Model,
        pin: Option<pins::Model>,
    ) -> StoreResult<()> {
        let txn = self.db().begin().await?;
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
        txn.commit().await?;
        Ok(())
    }

    /// One session of a project.
    pub async fn session(
        &self,
        project_id: &str,
        session_id: &str,
    ) -> StoreResult<Option<sessions::Model>> {
        Ok(sessions::Entity::find_by_id(session_id.to_owned())
            .filter(sessions::Column::ProjectId.eq(project_id))
            .one(self.db())
            .await?)
    }

    /// The refresh token with this hash, whatever its project.
    pub async fn refresh_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<refresh_tokens::Model>> {
        Ok(refresh_tokens::Entity::find_by_id(token_hash.to_owned())
            .one(self.db())
            .await?)
    }

    /// Marks `old_hash` rotated, inserts `new` as current and moves the
    /// session's last issuance from `issued_before` to `now`, all or nothing.
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new: refresh_tokens::Model,
        issued_before: i64,
        now: i64,
    ) -> StoreResult<Rotation> {
        let txn = self.db().begin().await?;
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
            return Ok(Rotation::Lost);
        }
        refresh_tokens::Entity::insert(new.into_active_model())
            .exec(&txn)
            .await?;
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

    /// Revokes one session; `None` when the project has no such session,
    /// `Some(false)` when it was already revoked.
    pub async fn revoke_session(
        &self,
        project_id: &str,
        session_id: &str,
        now: i64,
    ) -> StoreResult<Option<bool>> {
        let res = sessions::Entity::update_many()
            .col_expr(sessions::Column::RevokedAt, Expr::value(now))
            .filter(sessions::Column::ProjectId.eq(project_id))
            .filter(sessions::Column::Id.eq(session_id))
            .filter(sessions::Column::RevokedAt.is_null())
            .exec(self.db())
            .await?;
        if res.rows_affected == 1 {
            return Ok(Some(true));
        }
        Ok(self.session(project_id, session_id).await?.map(|_| false))
    }

    /// Revokes every live session of a user but `except`; returns their ids.
    pub async fn revoke_user_sessions(
        &self,
        project_id: &str,
        user_id: &str,
        except: Option<&str>,
        now: i64,
    ) -> StoreResult<Vec<String>> {
        let txn = self.db().begin().await?;
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
        let ids: Vec<String> = q.into_tuple().all(&txn).await?;
        if !ids.is_empty() {
            sessions::Entity::update_many()
                .col_expr(sessions::Column::RevokedAt, Expr::value(now))
                .filter(sessions::Column::Id.is_in(ids.clone()))
                .filter(sessions::Column::RevokedAt.is_null())
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(ids)
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

    /// Records a failed sign-in.
    pub async fn record_auth_failure(&self, row: auth_failures::Model) -> StoreResult<()> {
        auth_failures::Entity::insert(row.into_active_model())
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// Times of a user's failed sign-ins at or after `since`, oldest first.
    pub async fn auth_failures_since(
        &self,
        project_id: &str,
        user_id: &str,
        since: i64,
    ) -> StoreResult<Vec<i64>> {
        Ok(auth_failures::Entity::find()
            .select_only()
            .column(auth_failures::Column::At)
            .filter(auth_failures::Column::ProjectId.eq(project_id))
            .filter(auth_failures::Column::UserId.eq(user_id))
            .filter(auth_failures::Column::At.gte(since))
            .order_by_asc(auth_failures::Column::At)
            .into_tuple()
            .all(self.db())
            .await?)
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
