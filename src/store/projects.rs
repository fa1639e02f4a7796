//! Projects and the API keys that map to them.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};

use super::entity::{api_keys, projects};
use super::{ByKey, Store, StoreError, StoreResult};

impl Store {
    /// The project called `name`, created with `new_id` when missing.
    pub async fn get_or_create_project(
        &self,
        name: &str,
        new_id: String,
    ) -> StoreResult<projects::Model> {
        if let Some(p) = self.project_by_name(name).await? {
            return Ok(p);
        }
        let row = projects::ActiveModel {
            id: Set(new_id),
            name: Set(name.to_owned()),
            created_at: Set(self.now_millis()),
            rate_limit_per_second: Set(None),
            rate_limit_burst: Set(None),
        };
        match row.insert(self.db()).await.map_err(StoreError::from) {
            Ok(p) => Ok(p),
            // Another process created it at the same moment.
            Err(StoreError::Duplicate(_)) => self
                .project_by_name(name)
                .await?
                .ok_or_else(|| StoreError::Duplicate(name.to_owned())),
            Err(e) => Err(e),
        }
    }

    /// Sets (or, with `None`, clears) a project's own rate limit; false when
    /// there is no such project.
    pub async fn set_project_rate_limit(
        &self,
        name: &str,
        limit: Option<(i64, i64)>,
    ) -> StoreResult<bool> {
        let res = projects::Entity::update_many()
            .col_expr(
                projects::Column::RateLimitPerSecond,
                sea_orm::sea_query::Expr::value(limit.map(|l| l.0)),
            )
            .col_expr(
                projects::Column::RateLimitBurst,
                sea_orm::sea_query::Expr::value(limit.map(|l| l.1)),
            )
            .filter(projects::Column::Name.eq(name))
            .exec(self.db())
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// The project called `name`, if any.
    pub async fn project_by_name(&self, name: &str) -> StoreResult<Option<projects::Model>> {
        Ok(projects::Entity::find()
            .filter(projects::Column::Name.eq(name))
            .by_key(self.db())
            .await?)
    }

    /// The project with this id, if any.
    pub async fn project_by_id(&self, id: &str) -> StoreResult<Option<projects::Model>> {
        Ok(projects::Entity::find_by_id(id.to_owned())
            .by_key(self.db())
            .await?)
    }

    /// How many projects exist.
    pub async fn count_projects(&self) -> StoreResult<u64> {
        Ok(projects::Entity::find().count(self.db()).await?)
    }

    /// Stores a new key (its hash only) for a project.
    pub async fn insert_api_key(
        &self,
        id: String,
        project_id: &str,
        key_hash: String,
        prefix: String,
    ) -> StoreResult<api_keys::Model> {
        let row = api_keys::ActiveModel {
            id: Set(id),
            project_id: Set(project_id.to_owned()),
            key_hash: Set(key_hash),
            prefix: Set(prefix),
            created_at: Set(self.now_millis()),
            revoked_at: Set(None),
        };
        Ok(row.insert(self.db()).await?)
    }

    /// The project of an unrevoked key with this hash, and the key's id.
    pub async fn project_for_key_hash(
        &self,
        key_hash: &str,
    ) -> StoreResult<Option<(projects::Model, String)>> {
        let Some(key) = api_keys::Entity::find()
            .filter(api_keys::Column::KeyHash.eq(key_hash))
            .filter(api_keys::Column::RevokedAt.is_null())
            .by_key(self.db())
            .await?
        else {
            return Ok(None);
        };
        Ok(projects::Entity::find_by_id(key.project_id)
            .by_key(self.db())
            .await?
            .map(|p| (p, key.id)))
    }

    /// Every key with its project, oldest first.
    pub async fn list_api_keys(
        &self,
    ) -> StoreResult<Vec<(api_keys::Model, Option<projects::Model>)>> {
        let keys = api_keys::Entity::find()
            .order_by_asc(api_keys::Column::CreatedAt)
            .order_by_asc(api_keys::Column::Id)
            .all(self.db())
            .await?;
        let projects = projects::Entity::find().all(self.db()).await?;
        Ok(keys
            .into_iter()
            .map(|k| {
                let p = projects.iter().find(|p| p.id == k.project_id).cloned();
                (k, p)
            })
            .collect())
    }

    /// Marks a key revoked; false when no unrevoked key has this id.
    pub async fn revoke_api_key(&self, id: &str) -> StoreResult<bool> {
        let res = api_keys::Entity::update_many()
            .col_expr(
                api_keys::Column::RevokedAt,
                sea_orm::sea_query::Expr::value(self.now_millis()),
            )
            .filter(api_keys::Column::Id.eq(id))
            .filter(api_keys::Column::RevokedAt.is_null())
            .exec(self.db())
            .await?;
        Ok(res.rows_affected == 1)
    }
}
