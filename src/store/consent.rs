//! The consent ledger (append-only events) and the current state per
//! user and category.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, sea_query::OnConflict,
};

use super::entity::{consent_events, consent_states, events, users};
use super::{ByKey, Store, StoreResult};

/// What a user's consent change follows.
#[derive(Debug)]
pub struct LastRecorded {
    /// The user's last ledger entry: its id and time.
    pub entry: Option<(String, i64)>,
    /// The id of the user's last event.
    pub event: Option<String>,
}

impl Store {
    /// Appends an entry to the ledger and sets the current state to match,
    /// with the events announcing it, in one transaction, only while the
    /// user exists: false (and nothing stored) when it was deleted.
    ///
    /// The user's row is locked for the whole transaction on PostgreSQL
    /// (SQLite serialises writers), so a delete racing it either runs first
    /// or erases this record too, and one user's consent changes are
    /// recorded one at a time. `record` makes the entry and its events
    /// under that lock, given the user's last ledger entry (id and time)
    /// and the id of the user's last event, so that they are ordered after
    /// every entry and event already stored: the last entry of the ledger
    /// is then always the one stored last, which is the current state,
    /// and its event the last announced, whichever replica's clock made
    /// them.
    pub async fn record_consent(
        &self,
        project_id: &str,
        user_id: &str,
        record: impl FnOnce(LastRecorded) -> (consent_events::Model, Vec<events::Model>),
    ) -> StoreResult<bool> {
        let txn = self.write_txn().await?;
        let user = users::Entity::find_by_id(user_id.to_owned())
            .filter(users::Column::ProjectId.eq(project_id))
            .lock_exclusive()
            .by_key(&txn)
            .await?;
        if user.is_none() {
            txn.rollback().await?;
            return Ok(false);
        }
        let last: Option<(String, i64)> = consent_events::Entity::find()
            .select_only()
            .column(consent_events::Column::Id)
            .column(consent_events::Column::CreatedAt)
            .filter(consent_events::Column::ProjectId.eq(project_id))
            .filter(consent_events::Column::UserId.eq(user_id))
            .order_by_desc(consent_events::Column::Id)
            .limit(1)
            .into_tuple()
            .all(&txn)
            .await?
            .pop();
        let last_event: Option<String> = events::Entity::find()
            .select_only()
            .column(events::Column::Id)
            .filter(events::Column::ProjectId.eq(project_id))
            .filter(events::Column::UserId.eq(user_id))
            .order_by_desc(events::Column::Id)
            .limit(1)
            .into_tuple()
            .all(&txn)
            .await?
            .pop();
        let (event, announce) = record(LastRecorded {
            entry: last,
            event: last_event,
        });
        let state = consent_states::Model::after(&event);
        consent_events::Entity::insert(event.into_active_model())
            .exec(&txn)
            .await?;
        consent_states::Entity::insert(state.into_active_model())
            .on_conflict(
                OnConflict::columns([
                    consent_states::Column::ProjectId,
                    consent_states::Column::UserId,
                    consent_states::Column::Category,
                ])
                .update_columns([
                    consent_states::Column::Granted,
                    consent_states::Column::Source,
                    consent_states::Column::GrantedAt,
                    consent_states::Column::UpdatedAt,
                ])
                .to_owned(),
            )
            .exec(&txn)
            .await?;
        super::events::append(&txn, announce).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// The current state of one category for a user.
    pub async fn consent_state(
        &self,
        project_id: &str,
        user_id: &str,
        category: &str,
    ) -> StoreResult<Option<consent_states::Model>> {
        Ok(consent_states::Entity::find_by_id((
            project_id.to_owned(),
            user_id.to_owned(),
            category.to_owned(),
        ))
        .by_key(self.db())
        .await?)
    }

    /// The current state of every category a user has touched, by
    /// category in byte order, as the export lists them: sorted here, not
    /// by the database, whose collation may order punctuation otherwise.
    pub async fn consent_states(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<consent_states::Model>> {
        let mut states = consent_states::Entity::find()
            .filter(consent_states::Column::ProjectId.eq(project_id))
            .filter(consent_states::Column::UserId.eq(user_id))
            .all(self.db())
            .await?;
        states.sort_unstable_by(|a, b| a.category.cmp(&b.category));
        Ok(states)
    }

    /// A user's whole ledger, oldest first.
    pub async fn consent_events(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<consent_events::Model>> {
        consent_events_in(self.db(), project_id, user_id).await
    }
}

/// A user's whole ledger, oldest first, read through `c`.
pub(super) async fn consent_events_in(
    c: &impl ConnectionTrait,
    project_id: &str,
    user_id: &str,
) -> StoreResult<Vec<consent_events::Model>> {
    Ok(consent_events::Entity::find()
        .filter(consent_events::Column::ProjectId.eq(project_id))
        .filter(consent_events::Column::UserId.eq(user_id))
        .order_by_asc(consent_events::Column::Id)
        .all(c)
        .await?)
}
