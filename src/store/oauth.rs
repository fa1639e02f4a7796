//! Identity providers, sign-ins under way and linked identities.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::entity::{events, identities, oauth_providers, oauth_states, users};
use super::{ByKey, Store, StoreError, StoreResult};

/// What linking an identity found.
#[derive(Debug, PartialEq, Eq)]
pub enum Linked {
    /// Linked now, or already linked to this user.
    Linked,
    /// The identity is linked to another user (the winner of a race).
    ToOther(String),
    /// The user is gone.
    NoUser,
}

impl Store {
    /// Inserts or replaces a project's provider.
    pub async fn put_oauth_provider(&self, row: oauth_providers::Model) -> StoreResult<()> {
        oauth_providers::Entity::insert(row.into_active_model())
            .on_conflict(
                OnConflict::columns([
                    oauth_providers::Column::ProjectId,
                    oauth_providers::Column::Provider,
                ])
                .update_columns([
                    oauth_providers::Column::Config,
                    oauth_providers::Column::UpdatedAt,
                ])
                .to_owned(),
            )
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// A project's providers, by name.
    pub async fn oauth_providers(
        &self,
        project_id: &str,
    ) -> StoreResult<Vec<oauth_providers::Model>> {
        Ok(oauth_providers::Entity::find()
            .filter(oauth_providers::Column::ProjectId.eq(project_id))
            .order_by_asc(oauth_providers::Column::Provider)
            .all(self.db())
            .await?)
    }

    /// Every project's providers.
    pub async fn all_oauth_providers(&self) -> StoreResult<Vec<oauth_providers::Model>> {
        Ok(oauth_providers::Entity::find()
            .order_by_asc(oauth_providers::Column::ProjectId)
            .order_by_asc(oauth_providers::Column::Provider)
            .all(self.db())
            .await?)
    }

    /// Forgets a project's provider; false when there was none.
    pub async fn delete_oauth_provider(
        &self,
        project_id: &str,
        provider: &str,
    ) -> StoreResult<bool> {
        let res = oauth_providers::Entity::delete_many()
            .filter(oauth_providers::Column::ProjectId.eq(project_id))
            .filter(oauth_providers::Column::Provider.eq(provider))
            .exec(self.db())
            .await?;
        Ok(res.rows_affected > 0)
    }

    /// Records a sign-in under way.
    pub async fn insert_oauth_state(&self, row: oauth_states::Model) -> StoreResult<()> {
        oauth_states::Entity::insert(row.into_active_model())
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// Marks a state used, once: the row when this call is the one that
    /// used it (unexpired, never used before), else `None`.
    pub async fn consume_oauth_state(
        &self,
        project_id: &str,
        id: &str,
        now: i64,
    ) -> StoreResult<Option<oauth_states::Model>> {
        let res = oauth_states::Entity::update_many()
            .col_expr(oauth_states::Column::ConsumedAt, Expr::value(now))
            .filter(oauth_states::Column::Id.eq(id))
            .filter(oauth_states::Column::ProjectId.eq(project_id))
            .filter(oauth_states::Column::ConsumedAt.is_null())
            .filter(oauth_states::Column::ExpiresAt.gt(now))
            .exec(self.db())
            .await?;
        if res.rows_affected != 1 {
            return Ok(None);
        }
        self.oauth_state(project_id, id).await
    }

    /// One state of a project.
    pub async fn oauth_state(
        &self,
        project_id: &str,
        id: &str,
    ) -> StoreResult<Option<oauth_states::Model>> {
        Ok(oauth_states::Entity::find_by_id(id.to_owned())
            .filter(oauth_states::Column::ProjectId.eq(project_id))
            .by_key(self.db())
            .await?)
    }

    /// Keeps a sign-in waiting for its second factor until `until`.
    pub async fn set_oauth_pending(
        &self,
        id: &str,
        pending: Vec<u8>,
        until: i64,
    ) -> StoreResult<()> {
        oauth_states::Entity::update_many()
            .col_expr(oauth_states::Column::Pending, Expr::value(pending))
            .col_expr(oauth_states::Column::PendingUntil, Expr::value(until))
            .filter(oauth_states::Column::Id.eq(id))
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// Ends a waiting sign-in, once: true for the call that ended it.
    pub async fn take_oauth_pending(&self, id: &str) -> StoreResult<bool> {
        let res = oauth_states::Entity::update_many()
            .col_expr(
                oauth_states::Column::Pending,
                Expr::value(Option::<Vec<u8>>::None),
            )
            .filter(oauth_states::Column::Id.eq(id))
            .filter(oauth_states::Column::Pending.is_not_null())
            .exec(self.db())
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// Deletes states past their expiry and any waiting second factor.
    pub async fn purge_oauth_states(&self, now: i64) -> StoreResult<u64> {
        let res = oauth_states::Entity::delete_many()
            .filter(oauth_states::Column::ExpiresAt.lte(now))
            .filter(
                Condition::any()
                    .add(oauth_states::Column::PendingUntil.is_null())
                    .add(oauth_states::Column::PendingUntil.lte(now)),
            )
            .exec(self.db())
            .await?;
        Ok(res.rows_affected)
    }

    /// The identity `(provider, subject)` of a project.
    pub async fn identity(
        &self,
        project_id: &str,
        provider: &str,
        subject: &str,
    ) -> StoreResult<Option<identities::Model>> {
        Ok(identities::Entity::find_by_id((
            project_id.to_owned(),
            provider.to_owned(),
            subject.to_owned(),
        ))
        .by_key(self.db())
        .await?)
    }

    /// A user's identities.
    pub async fn user_identities(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<identities::Model>> {
        user_identities_in(self.db(), project_id, user_id).await
    }

    /// Links an identity to a user, with the user row held so a delete
    /// racing it either runs first (no link) or after (and removes it).
    /// The events in `announce` are written only when the link is new.
    pub async fn link_identity(
        &self,
        row: identities::Model,
        announce: Vec<events::Model>,
    ) -> StoreResult<Linked> {
        let txn = self.write_txn().await?;
        let user = users::Entity::find_by_id(row.user_id.clone())
            .filter(users::Column::ProjectId.eq(row.project_id.clone()))
            .lock_shared()
            .by_key(&txn)
            .await?;
        if user.is_none() {
            txn.rollback().await?;
            return Ok(Linked::NoUser);
        }
        let existing = identities::Entity::find_by_id((
            row.project_id.clone(),
            row.provider.clone(),
            row.subject.clone(),
        ))
        .by_key(&txn)
        .await?;
        let outcome = match existing {
            Some(e) if e.user_id == row.user_id => Linked::Linked,
            Some(e) => Linked::ToOther(e.user_id),
            None => {
                match identities::Entity::insert(row.into_active_model())
                    .exec(&txn)
                    .await
                {
                    Ok(_) => {
                        super::events::append(&txn, announce).await?;
                        Linked::Linked
                    }
                    Err(e) => {
                        txn.rollback().await?;
                        return Err(StoreError::from(e));
                    }
                }
            }
        };
        txn.commit().await?;
        Ok(outcome)
    }

    /// Unlinks a user's identities at a provider, unless they are the
    /// user's last way to sign in: `Ok(n)` unlinked, `Err(())` refused.
    /// The events in `announce` are written only when some were unlinked.
    pub async fn unlink_identity(
        &self,
        project_id: &str,
        user_id: &str,
        provider: &str,
        announce: Vec<events::Model>,
    ) -> StoreResult<Result<u64, ()>> {
        let txn = self.write_txn().await?;
        let user = users::Entity::find_by_id(user_id.to_owned())
            .filter(users::Column::ProjectId.eq(project_id))
            .lock_exclusive()
            .by_key(&txn)
            .await?;
        let Some(user) = user else {
            txn.rollback().await?;
            return Ok(Ok(0));
        };
        let all = identities::Entity::find()
            .filter(identities::Column::ProjectId.eq(project_id))
            .filter(identities::Column::UserId.eq(user_id))
            .all(&txn)
            .await?;
        let at_provider = all.iter().filter(|i| i.provider == provider).count();
        if at_provider > 0 && at_provider == all.len() && !user.password_set {
            txn.rollback().await?;
            return Ok(Err(()));
        }
        let res = identities::Entity::delete_many()
            .filter(identities::Column::ProjectId.eq(project_id))
            .filter(identities::Column::UserId.eq(user_id))
            .filter(identities::Column::Provider.eq(provider))
            .exec(&txn)
            .await?;
        if res.rows_affected > 0 {
            super::events::append(&txn, announce).await?;
        }
        txn.commit().await?;
        Ok(Ok(res.rows_affected))
    }
}

/// A user's linked identities, by provider and subject, read through `c`.
pub(super) async fn user_identities_in(
    c: &impl ConnectionTrait,
    project_id: &str,
    user_id: &str,
) -> StoreResult<Vec<identities::Model>> {
    Ok(identities::Entity::find()
        .filter(identities::Column::ProjectId.eq(project_id))
        .filter(identities::Column::UserId.eq(user_id))
        .order_by_asc(identities::Column::Provider)
        .order_by_asc(identities::Column::Subject)
        .all(c)
        .await?)
}
