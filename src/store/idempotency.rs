//! Idempotency records: one row per (project, key), claimed before the
//! operation runs and completed with its (encrypted) reply.

use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, sea_query::Expr};

use super::entity::idempotency_keys;
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
