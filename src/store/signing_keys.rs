//! Signing keys: sealed private halves and public JWKs.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};

use super::entity::signing_keys;
use super::{Store, StoreResult};

impl Store {
    /// Every signing key, oldest first.
    pub async fn signing_keys(&self) -> StoreResult<Vec<signing_keys::Model>> {
        Ok(signing_keys::Entity::find()
            .order_by_asc(signing_keys::Column::CreatedAt)
            .order_by_asc(signing_keys::Column::Kid)
            .all(self.db())
            .await?)
    }

    /// Inserts `key` as the current key and retires every other current
    /// key at `now`, in one transaction.
    pub async fn install_signing_key(&self, key: signing_keys::Model, now: i64) -> StoreResult<()> {
        let txn = self.write_txn().await?;
        signing_keys::Entity::update_many()
            .col_expr(signing_keys::Column::RetiredAt, Expr::value(now))
            .filter(signing_keys::Column::RetiredAt.is_null())
            .exec(&txn)
            .await?;
        signing_keys::Entity::insert(key.into_active_model())
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }
}
