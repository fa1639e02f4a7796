//! Idempotency records: one row per (project, key), claimed before the
//! operation runs and completed with its (encrypted) reply.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect,
    sea_query::Expr,
};

use super::entity::{idempotency_keys, users};
use super::{ByKey, Store, StoreError, StoreResult};

impl Store {
    /// Claims a key; false when a row for it already exists.
    pub async fn claim_idempotency_key(&self, row: idempotency_keys::Model) -> StoreResult<bool> {
        match idempotency_keys::Entity::insert(row.into_active_model())
            .exec(self.db())
            .await
            .map_err(StoreError::from)
        {
            Ok(_) => Ok(true),
            Err(StoreError::Duplicate(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The record for a key.
    pub async fn idempotency_record(
        &self,
        project_id: &str,
        key: &str,
    ) -> StoreResult<Option<idempotency_keys::Model>> {
        Ok(
            idempotency_keys::Entity::find_by_id((project_id.to_owned(), key.to_owned()))
                .by_key(self.db())
                .await?,
        )
    }

    /// Stores the reply of a claimed key.
    pub async fn complete_idempotency_key(
        &self,
        project_id: &str,
        key: &str,
        response: Vec<u8>,
    ) -> StoreResult<()> {
        idempotency_keys::Entity::update_many()
            .col_expr(idempotency_keys::Column::Response, Expr::value(response))
            .filter(idempotency_keys::Column::ProjectId.eq(project_id))
            .filter(idempotency_keys::Column::Key.eq(key))
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// Stores the reply of a claimed key that is about `user_id`, noting
    /// the user, so that the user's deletion erases the reply (see
    /// [`erase_idempotent_replies`]). The user's row is share-locked
    /// meanwhile, as a sign-in does: a deletion either erases after this
    /// commits, or has erased already, and then the reply is not stored
    /// (the record is marked erased).
    pub async fn complete_idempotency_key_about(
        &self,
        project_id: &str,
        key: &str,
        response: Vec<u8>,
        user_id: &str,
    ) -> StoreResult<()> {
        let txn = self.write_txn().await?;
        let live = users::Entity::find_by_id(user_id.to_owned())
            .filter(users::Column::ProjectId.eq(project_id))
            .lock_shared()
            .by_key(&txn)
            .await?
            .is_some();
        idempotency_keys::Entity::update_many()
            .col_expr(
                idempotency_keys::Column::Response,
                Expr::value(live.then_some(response)),
            )
            .col_expr(idempotency_keys::Column::UserId, Expr::value(user_id))
            .col_expr(idempotency_keys::Column::Erased, Expr::value(!live))
            .filter(idempotency_keys::Column::ProjectId.eq(project_id))
            .filter(idempotency_keys::Column::Key.eq(key))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Releases a key whose record was created at `created_at` (a failed
    /// operation, or an expired record); a newer record is left alone.
    pub async fn release_idempotency_key(
        &self,
        project_id: &str,
        key: &str,
        created_at: i64,
    ) -> StoreResult<()> {
        idempotency_keys::Entity::delete_many()
            .filter(idempotency_keys::Column::ProjectId.eq(project_id))
            .filter(idempotency_keys::Column::Key.eq(key))
            .filter(idempotency_keys::Column::CreatedAt.eq(created_at))
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// Deletes every record created before `before`.
    pub async fn purge_idempotency_keys(&self, before: i64) -> StoreResult<u64> {
        let res = idempotency_keys::Entity::delete_many()
            .filter(idempotency_keys::Column::CreatedAt.lt(before))
            .exec(self.db())
            .await?;
        Ok(res.rows_affected)
    }
}

/// Erases, within a user's deletion, the stored replies about the user:
/// each keeps its key and fingerprint (a repeat is still recognised) but
/// no longer its reply.
pub(super) async fn erase_idempotent_replies(
    db: &impl ConnectionTrait,
    project_id: &str,
    user_id: &str,
) -> StoreResult<()> {
    idempotency_keys::Entity::update_many()
        .col_expr(
            idempotency_keys::Column::Response,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .col_expr(idempotency_keys::Column::Erased, Expr::value(true))
        .filter(idempotency_keys::Column::ProjectId.eq(project_id))
        .filter(idempotency_keys::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}
