//! The event log: appended to inside the transaction of the change it
//! announces, read by the audit log and the GDPR export, purged after the
//! retention.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::entity::events;
use super::{Store, StoreResult};

/// Appends `rows` on `conn` (the transaction of the change they
/// announce), with their webhook deliveries. All rows are of one project.
pub(crate) async fn append<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<events::Model>,
) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    super::webhooks::fan_out(conn, &rows).await?;
    events::Entity::insert_many(rows.into_iter().map(IntoActiveModel::into_active_model))
        .exec(conn)
        .await?;
    Ok(())
}

/// Which events a listing wants.
#[derive(Debug, Default)]
pub struct EventFilter<'a> {
    /// Only this user's.
    pub user_id: Option<&'a str>,
    /// Only of this kind.
    pub kind: Option<&'a str>,
    /// Only older than this event id (keyset cursor).
    pub before: Option<&'a str>,
}

impl Store {
    /// Appends events outside any other change (e.g. an endpoint disabled).
    pub async fn append_events(&self, rows: Vec<events::Model>) -> StoreResult<()> {
        append(self.db(), rows).await
    }

    /// Up to `limit` events of a project, newest first.
    pub async fn events(
        &self,
        project_id: &str,
        filter: &EventFilter<'_>,
        limit: u64,
    ) -> StoreResult<Vec<events::Model>> {
        events_in(self.db(), project_id, filter, limit).await
    }

    /// Deletes events that occurred before `before` (Unix ms), at most
    /// `batch` of them; how many went.
    pub async fn purge_events(&self, before: i64, batch: u64) -> StoreResult<u64> {
        let ids: Vec<String> = events::Entity::find()
            .select_only()
            .column(events::Column::Id)
            .filter(events::Column::OccurredAt.lt(before))
            .limit(batch)
            .into_tuple()
            .all(self.db())
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let res = events::Entity::delete_many()
            .filter(events::Column::Id.is_in(ids))
            .exec(self.db())
            .await?;
        Ok(res.rows_affected)
    }
}

/// Up to `limit` events of a project, newest first, read through `c`.
pub(super) async fn events_in(
    c: &impl ConnectionTrait,
    project_id: &str,
    filter: &EventFilter<'_>,
    limit: u64,
) -> StoreResult<Vec<events::Model>> {
    let mut q = events::Entity::find().filter(events::Column::ProjectId.eq(project_id));
    if let Some(user) = filter.user_id {
        q = q.filter(events::Column::UserId.eq(user));
    }
    if let Some(kind) = filter.kind {
        q = q.filter(events::Column::Kind.eq(kind));
    }
    if let Some(before) = filter.before {
        q = q.filter(events::Column::Id.lt(before));
    }
    Ok(q.order_by_desc(events::Column::Id)
        .limit(limit)
        .all(c)
        .await?)
}
