//! Webhook endpoints and deliveries. Deliveries are written in the
//! transaction of their event (see [`fan_out`]) and handed out to the
//! replicas' delivery workers by [`Store::claim_deliveries`]: a claim is a
//! lease, so a replica that dies mid-delivery only delays it.

use sea_orm::sea_query::{Expr, ExprTrait, LockType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement, Value,
};

use super::entity::{events, projects, webhook_deliveries, webhook_endpoints};
use super::{ByKey, Store, StoreResult};

/// A delivery waiting for its first attempt or a retry.
pub const PENDING: &str = "pending";
/// Delivered (a 2xx).
pub const DELIVERED: &str = "delivered";
/// Given up after its last retry.
pub const FAILED: &str = "failed";

/// The body sent for an event: Standard Webhooks' `{type, timestamp,
/// data}`, with the event's id in `data.event_id` as well as in the
/// `webhook-id` header.
pub fn payload(event: &events::Model) -> String {
    let mut data: serde_json::Value =
        serde_json::from_str(&event.data).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(obj) = data.as_object_mut() {
        obj.insert("event_id".into(), event.id.clone().into());
        obj.insert("project_id".into(), event.project_id.clone().into());
    }
    let at = chrono::DateTime::from_timestamp_millis(event.occurred_at)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    serde_json::json!({"type": event.kind, "timestamp": at, "data": data}).to_string()
}

/// Whether an endpoint subscribed to `kind` (an empty list is every kind).
fn wants(endpoint: &webhook_endpoints::Model, kind: &str) -> bool {
    let types: Vec<String> = serde_json::from_str(&endpoint.event_types).unwrap_or_default();
    types.is_empty() || types.iter().any(|t| t == kind)
}

/// Queues a delivery of each of `rows` to every enabled endpoint of its
/// project that wants it, on `conn` (the events' own transaction).
pub(crate) async fn fan_out<C: ConnectionTrait>(
    conn: &C,
    rows: &[events::Model],
) -> StoreResult<()> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    // Each endpoint found is key-share locked until the events commit (as
    // a foreign key's check would lock it): an endpoint's deletion waits
    // for them and then removes their deliveries too, or, deleted first,
    // is not found here. Read unlocked, an endpoint deleted meanwhile on
    // PostgreSQL kept deliveries queued for it. Disabling an endpoint
    // doesn't wait (key-share locks only hold off deletes and key changes);
    // SQLite has one writer at a time.
    let endpoints = webhook_endpoints::Entity::find()
        .filter(webhook_endpoints::Column::ProjectId.eq(first.project_id.clone()))
        .filter(webhook_endpoints::Column::DisabledAt.is_null())
        .lock(LockType::KeyShare)
        .all(conn)
        .await?;
    let mut deliveries = Vec::new();
    for event in rows {
        for endpoint in endpoints
            .iter()
            .filter(|e| e.project_id == event.project_id && wants(e, &event.kind))
        {
            deliveries.push(
                webhook_deliveries::Model {
                    id: format!("dlv_{}", uuid::Uuid::now_v7().simple()),
                    project_id: event.project_id.clone(),
                    endpoint_id: endpoint.id.clone(),
                    event_id: event.id.clone(),
                    ordering_key: event.user_id.clone().unwrap_or_else(|| event.id.clone()),
                    payload: payload(event),
                    status: PENDING.to_owned(),
                    attempts: 0,
                    next_attempt_at: event.occurred_at,
                    claimed_until: None,
                    claimed_by: None,
                    last_status: None,
                    last_error: None,
                    created_at: event.occurred_at,
                    delivered_at: None,
                }
                .into_active_model(),
            );
        }
    }
    if !deliveries.is_empty() {
        webhook_deliveries::Entity::insert_many(deliveries)
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// How an attempt ended.
#[derive(Clone, Debug)]
pub enum Attempt {
    /// A 2xx.
    Delivered {
        /// The status code.
        status: u16,
    },
    /// Anything else; retried at `retry_at` (Unix ms), or given up when
    /// `None`.
    Failed {
        /// The status code, when the endpoint answered.
        status: Option<u16>,
        /// What went wrong, for the operator.
        error: String,
        /// When to try again.
        retry_at: Option<i64>,
    },
}

/// A claimed delivery with its endpoint.
pub type Claimed = (webhook_deliveries::Model, webhook_endpoints::Model);

impl Store {
    /// Adds an endpoint unless its project already has `max`: false then.
    /// The count and the insert are one transaction with the project's
    /// row locked (SQLite serialises writers), so creates racing each
    /// other never pass the limit together.
    pub async fn insert_webhook_endpoint(
        &self,
        row: webhook_endpoints::Model,
        max: u64,
    ) -> StoreResult<bool> {
        let txn = self.write_txn().await?;
        projects::Entity::find_by_id(row.project_id.clone())
            .lock_exclusive()
            .by_key(&txn)
            .await?;
        let held = webhook_endpoints::Entity::find()
            .filter(webhook_endpoints::Column::ProjectId.eq(row.project_id.clone()))
            .count(&txn)
            .await?;
        if held >= max {
            txn.rollback().await?;
            return Ok(false);
        }
        webhook_endpoints::Entity::insert(row.into_active_model())
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(true)
    }

    /// A project's endpoints, oldest first.
    pub async fn webhook_endpoints(
        &self,
        project_id: &str,
    ) -> StoreResult<Vec<webhook_endpoints::Model>> {
        Ok(webhook_endpoints::Entity::find()
            .filter(webhook_endpoints::Column::ProjectId.eq(project_id))
            .order_by_asc(webhook_endpoints::Column::Id)
            .all(self.db())
            .await?)
    }

    /// Deletes an endpoint and its deliveries; false when the project has
    /// no such endpoint.
    pub async fn delete_webhook_endpoint(&self, project_id: &str, id: &str) -> StoreResult<bool> {
        let txn = self.write_txn().await?;
        let res = webhook_endpoints::Entity::delete_many()
            .filter(webhook_endpoints::Column::ProjectId.eq(project_id))
            .filter(webhook_endpoints::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        webhook_deliveries::Entity::delete_many()
            .filter(webhook_deliveries::Column::ProjectId.eq(project_id))
            .filter(webhook_deliveries::Column::EndpointId.eq(id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(res.rows_affected == 1)
    }

    /// Up to `limit` deliveries of a project, newest first, older than
    /// the id `before`, of one endpoint when given.
    pub async fn webhook_deliveries(
        &self,
        project_id: &str,
        endpoint_id: Option<&str>,
        before: Option<&str>,
        limit: u64,
    ) -> StoreResult<Vec<webhook_deliveries::Model>> {
        let mut q = webhook_deliveries::Entity::find()
            .filter(webhook_deliveries::Column::ProjectId.eq(project_id));
        if let Some(e) = endpoint_id {
            q = q.filter(webhook_deliveries::Column::EndpointId.eq(e));
        }
        if let Some(b) = before {
            q = q.filter(webhook_deliveries::Column::Id.lt(b));
        }
        Ok(q.order_by_desc(webhook_deliveries::Column::Id)
            .limit(limit)
            .all(self.db())
            .await?)
    }

    /// Queues a delivery again, now, with a fresh retry schedule; `None`
    /// when the project has no such delivery. Its endpoint is enabled
    /// again if it was disabled. An attempt in flight may still reach the
    /// endpoint, but what it ends in is not recorded.
    pub async fn replay_webhook_delivery(
        &self,
        project_id: &str,
        id: &str,
        now: i64,
    ) -> StoreResult<Option<webhook_deliveries::Model>> {
        let txn = self.write_txn().await?;
        let Some(endpoint_id) = webhook_deliveries::Entity::find_by_id(id.to_owned())
            .by_key(&txn)
            .await?
            .filter(|d| d.project_id == project_id)
            .map(|d| d.endpoint_id)
        else {
            txn.rollback().await?;
            return Ok(None);
        };
        // The endpoint's row is taken before the delivery's, in the order
        // an endpoint's deletion takes them: the other way round, a replay
        // and a deletion at once deadlocked on PostgreSQL.
        webhook_endpoints::Entity::update_many()
            .col_expr(
                webhook_endpoints::Column::DisabledAt,
                Expr::value(Option::<i64>::None),
            )
            .filter(webhook_endpoints::Column::Id.eq(endpoint_id))
            .exec(&txn)
            .await?;
        let res = webhook_deliveries::Entity::update_many()
            .col_expr(webhook_deliveries::Column::Status, Expr::value(PENDING))
            .col_expr(webhook_deliveries::Column::Attempts, Expr::value(0))
            .col_expr(webhook_deliveries::Column::NextAttemptAt, Expr::value(now))
            .col_expr(
                webhook_deliveries::Column::ClaimedUntil,
                Expr::value(Option::<i64>::None),
            )
            // A claim held now is void: the attempt in flight under it
            // records nothing when it ends (see `finish_delivery`), so its
            // failure can't give up, or reschedule, what was replayed.
            .col_expr(
                webhook_deliveries::Column::ClaimedBy,
                Expr::value(Option::<String>::None),
            )
            .filter(webhook_deliveries::Column::ProjectId.eq(project_id))
            .filter(webhook_deliveries::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        if res.rows_affected == 0 {
            // Deleted with its endpoint meanwhile.
            txn.rollback().await?;
            return Ok(None);
        }
        let row = webhook_deliveries::Entity::find_by_id(id.to_owned())
            .by_key(&txn)
            .await?;
        txn.commit().await?;
        Ok(row)
    }

    /// Claims up to `limit` deliveries that are due at `now` for
    /// `worker` until `lease_until`: each the pending one of its endpoint
    /// and ordering key with the oldest event (so a user's events arrive
    /// in the order of their ids, the audit log's, whichever replica
    /// queued them and by whatever clock), none claimed by a live lease.
    /// On PostgreSQL, rows another replica is claiming are skipped (`FOR
    /// UPDATE SKIP LOCKED`); SQLite has one writer at a time.
    #[allow(
        clippy::disallowed_methods,
        reason = "the poll asks whether any delivery is due: one row of many, so it needs its LIMIT"
    )]
    pub async fn claim_deliveries(
        &self,
        worker: &str,
        now: i64,
        lease_until: i64,
        limit: u64,
    ) -> StoreResult<Vec<Claimed>> {
        // Most polls find nothing due: a read says so without taking
        // SQLite's write lock (or a PostgreSQL transaction).
        let due = webhook_deliveries::Entity::find()
            .select_only()
            .column(webhook_deliveries::Column::Id)
            .filter(webhook_deliveries::Column::Status.eq(PENDING))
            .filter(webhook_deliveries::Column::NextAttemptAt.lte(now))
            .limit(1)
            .into_tuple::<String>()
            .one(self.db())
            .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let backend = self.db().get_database_backend();
        let (p, lock) = match backend {
            DbBackend::Postgres => (["$1", "$2", "$3", "$4"], "FOR UPDATE SKIP LOCKED"),
            _ => (["?1", "?2", "?3", "?4"], ""),
        };
        let sql = format!(
            "UPDATE webhook_deliveries SET claimed_until = {lease}, claimed_by = {worker} \
             WHERE id IN (SELECT d.id FROM webhook_deliveries d \
               WHERE d.status = 'pending' AND d.next_attempt_at <= {now} \
                 AND (d.claimed_until IS NULL OR d.claimed_until < {now}) \
                 AND d.endpoint_id IN (SELECT w.id FROM webhook_endpoints w \
                   WHERE w.disabled_at IS NULL) \
                 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e \
                   WHERE e.endpoint_id = d.endpoint_id AND e.ordering_key = d.ordering_key \
                     AND e.status = 'pending' AND e.event_id < d.event_id) \
               ORDER BY d.next_attempt_at LIMIT {limit} {lock}) \
             RETURNING id",
            lease = p[0],
            worker = p[1],
            now = p[2],
            limit = p[3],
        );
        let values: Vec<Value> = vec![
            lease_until.into(),
            worker.into(),
            now.into(),
            (limit as i64).into(),
        ];
        let txn = self.write_txn().await?;
        let rows = txn
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        txn.commit().await?;
        let ids: Vec<String> = rows
            .iter()
            .filter_map(|r| r.try_get::<String>("", "id").ok())
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let deliveries = webhook_deliveries::Entity::find()
            .filter(webhook_deliveries::Column::Id.is_in(ids))
            .order_by_asc(webhook_deliveries::Column::Id)
            .all(self.db())
            .await?;
        let mut out = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            if let Some(e) = webhook_endpoints::Entity::find_by_id(d.endpoint_id.clone())
                .by_key(self.db())
                .await?
            {
                out.push((d, e));
            }
        }
        Ok(out)
    }

    /// Records an attempt of a delivery `worker` holds; nothing when its
    /// lease was lost meanwhile (another replica owns it now). The
    /// endpoint is disabled once a delivery is given up. True when this
    /// attempt disabled the endpoint.
    pub async fn finish_delivery(
        &self,
        delivery: &webhook_deliveries::Model,
        worker: &str,
        now: i64,
        outcome: &Attempt,
        disabled_event: impl FnOnce() -> events::Model,
    ) -> StoreResult<bool> {
        let txn = self.write_txn().await?;
        let give_up = matches!(outcome, Attempt::Failed { retry_at: None, .. });
        if give_up {
            // The endpoint's row, which giving up disables, is taken before
            // the delivery's, in the order an endpoint's deletion takes
            // them: the other way round, the two at once deadlocked on
            // PostgreSQL. (`NO KEY UPDATE`, as the update itself would
            // take, lets events recording deliveries to it go on.)
            webhook_endpoints::Entity::find_by_id(delivery.endpoint_id.clone())
                .lock(LockType::NoKeyUpdate)
                .by_key(&txn)
                .await?;
        }
        let mut update = webhook_deliveries::Entity::update_many()
            .col_expr(
                webhook_deliveries::Column::Attempts,
                Expr::col(webhook_deliveries::Column::Attempts).add(1),
            )
            .col_expr(
                webhook_deliveries::Column::ClaimedUntil,
                Expr::value(Option::<i64>::None),
            )
            .filter(webhook_deliveries::Column::Id.eq(delivery.id.clone()))
            .filter(webhook_deliveries::Column::ClaimedBy.eq(worker))
            .filter(webhook_deliveries::Column::Status.eq(PENDING));
        let status = match outcome {
            Attempt::Delivered { status } => {
                update = update
                    .col_expr(webhook_deliveries::Column::Status, Expr::value(DELIVERED))
                    .col_expr(webhook_deliveries::Column::DeliveredAt, Expr::value(now))
                    .col_expr(
                        webhook_deliveries::Column::LastError,
                        Expr::value(Option::<String>::None),
                    );
                Some(*status)
            }
            Attempt::Failed {
                status,
                error,
                retry_at,
            } => {
                update = update
                    .col_expr(
                        webhook_deliveries::Column::LastError,
                        Expr::value(error.clone()),
                    )
                    .col_expr(
                        webhook_deliveries::Column::Status,
                        Expr::value(if retry_at.is_some() { PENDING } else { FAILED }),
                    )
                    .col_expr(
                        webhook_deliveries::Column::NextAttemptAt,
                        Expr::value(retry_at.unwrap_or(now)),
                    );
                *status
            }
        };
        let res = update
            .col_expr(
                webhook_deliveries::Column::LastStatus,
                Expr::value(status.map(i32::from)),
            )
            .exec(&txn)
            .await?;
        if res.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(false);
        }
        let disabled = give_up
            && webhook_endpoints::Entity::update_many()
                .col_expr(webhook_endpoints::Column::DisabledAt, Expr::value(now))
                .filter(webhook_endpoints::Column::Id.eq(delivery.endpoint_id.clone()))
                .filter(webhook_endpoints::Column::DisabledAt.is_null())
                .exec(&txn)
                .await?
                .rows_affected
                == 1;
        if disabled {
            super::events::append(&txn, vec![disabled_event()]).await?;
        }
        txn.commit().await?;
        Ok(disabled)
    }
}
