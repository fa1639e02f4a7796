//! The per-project user index and the vendor pins of users.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::entity::{
    consent_events, consent_states, events, identities, native_credentials, pins, users,
};
use super::{ByKey, Store, StoreError, StoreResult};

/// Who deletes a user's rows.
#[derive(Clone, Copy, Debug)]
pub enum Deletion {
    /// The holder of the user's deletion reservation.
    Reserved,
    /// Anyone else (a read that found the user gone at its vendor): only
    /// when no deletion reserved the user after `reserved_before`.
    Unreserved {
        /// Unix ms; reservations older than this are dead.
        reserved_before: i64,
    },
}

/// No live deletion reservation on the row.
fn unreserved(reserved_before: i64) -> sea_orm::Condition {
    sea_orm::Condition::any()
        .add(users::Column::DeletingSince.is_null())
        .add(users::Column::DeletingSince.lt(reserved_before))
}

impl Store {
    /// Inserts a user and its pin, with the events announcing them, in
    /// one transaction.
    pub async fn insert_user(
        &self,
        user: users::Model,
        pin: pins::Model,
        announce: Vec<events::Model>,
    ) -> StoreResult<()> {
        let txn = self.write_txn().await?;
        users::Entity::insert(user.into_active_model())
            .exec(&txn)
            .await?;
        pins::Entity::insert(pin.into_active_model())
            .exec(&txn)
            .await?;
        super::events::append(&txn, announce).await?;
        txn.commit().await?;
        Ok(())
    }

    /// One user of a project.
    pub async fn user(&self, project_id: &str, user_id: &str) -> StoreResult<Option<users::Model>> {
        Ok(users::Entity::find_by_id(user_id.to_owned())
            .filter(users::Column::ProjectId.eq(project_id))
            .by_key(self.db())
            .await?)
    }

    /// One user of a project by lower-cased email.
    pub async fn user_by_email(
        &self,
        project_id: &str,
        email_lower: &str,
    ) -> StoreResult<Option<users::Model>> {
        Ok(users::Entity::find()
            .filter(users::Column::ProjectId.eq(project_id))
            .filter(users::Column::EmailLower.eq(email_lower))
            .by_key(self.db())
            .await?)
    }

    /// The user of a project who holds a phone number, if any.
    pub async fn user_by_phone(
        &self,
        project_id: &str,
        phone_number: &str,
    ) -> StoreResult<Option<users::Model>> {
        Ok(users::Entity::find()
            .filter(users::Column::ProjectId.eq(project_id))
            .filter(users::Column::PhoneNumber.eq(phone_number))
            .by_key(self.db())
            .await?)
    }

    /// Up to `limit` users, newest first, older than the id `before` when
    /// given (keyset pagination over the time-sortable ids).
    pub async fn list_users(
        &self,
        project_id: &str,
        before: Option<&str>,
        limit: u64,
    ) -> StoreResult<Vec<users::Model>> {
        let mut q = users::Entity::find().filter(users::Column::ProjectId.eq(project_id));
        if let Some(before) = before {
            q = q.filter(users::Column::Id.lt(before));
        }
        Ok(q.order_by_desc(users::Column::Id)
            .limit(limit)
            .all(self.db())
            .await?)
    }

    /// Changes a user's row atomically: reads it under a row lock (the
    /// write lock on SQLite), lets `change` edit it, and writes it back, so
    /// concurrent changes apply one after the other and none is lost; the
    /// events `announce` makes of the row before and after go in the same
    /// transaction. `None` when the project has no such user; an error
    /// from `change` leaves the row untouched.
    pub async fn modify_user<T, E>(
        &self,
        project_id: &str,
        user_id: &str,
        change: impl FnOnce(&mut users::Model) -> Result<T, E>,
        announce: impl FnOnce(&users::Model, &users::Model) -> Vec<events::Model>,
    ) -> Result<Option<(users::Model, T)>, E>
    where
        E: From<StoreError>,
    {
        let txn = self.write_txn().await?;
        let Some(mut row) = users::Entity::find_by_id(user_id.to_owned())
            .filter(users::Column::ProjectId.eq(project_id))
            .lock_exclusive()
            .by_key(&txn)
            .await
            .map_err(StoreError::from)?
        else {
            txn.rollback().await.map_err(StoreError::from)?;
            return Ok(None);
        };
        let before = row.clone();
        let out = match change(&mut row) {
            Ok(out) => out,
            Err(e) => {
                txn.rollback().await.map_err(StoreError::from)?;
                return Err(e);
            }
        };
        let saved = row
            .into_active_model()
            .reset_all()
            .update(&txn)
            .await
            .map_err(StoreError::from)?;
        super::events::append(&txn, announce(&before, &saved)).await?;
        txn.commit().await.map_err(StoreError::from)?;
        Ok(Some((saved, out)))
    }

    /// Deletes a user with its pin, native credentials, consent records and
    /// linked identities
    /// and revokes its sessions, all in one transaction; the ids of the
    /// sessions revoked, or `None` when the project has no such user. The
    /// user's row goes first: that waits for sign-ins holding it (see
    /// [`Store::insert_session`]), so the revocation that follows sees
    /// every session they stored. The events `announce` makes of the
    /// revoked sessions' ids go in the same transaction.
    pub async fn delete_user(
        &self,
        project_id: &str,
        user_id: &str,
        now: i64,
        whose: Deletion,
        announce: impl FnOnce(&[String]) -> Vec<events::Model>,
    ) -> StoreResult<Option<Vec<String>>> {
        let txn = self.write_txn().await?;
        let mut delete = users::Entity::delete_many()
            .filter(users::Column::ProjectId.eq(project_id))
            .filter(users::Column::Id.eq(user_id));
        if let Deletion::Unreserved { reserved_before } = whose {
            delete = delete.filter(unreserved(reserved_before));
        }
        let res = delete.exec(&txn).await?;
        if res.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        let revoked =
            super::sessions::revoke_user_sessions_in(&txn, project_id, user_id, None, now).await?;
        pins::Entity::delete_many()
            .filter(pins::Column::ProjectId.eq(project_id))
            .filter(pins::Column::ResourceId.eq(user_id))
            .exec(&txn)
            .await?;
        native_credentials::Entity::delete_many()
            .filter(native_credentials::Column::ProjectId.eq(project_id))
            .filter(native_credentials::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        consent_states::Entity::delete_many()
            .filter(consent_states::Column::ProjectId.eq(project_id))
            .filter(consent_states::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        consent_events::Entity::delete_many()
            .filter(consent_events::Column::ProjectId.eq(project_id))
            .filter(consent_events::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        identities::Entity::delete_many()
            .filter(identities::Column::ProjectId.eq(project_id))
            .filter(identities::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        super::idempotency::erase_idempotent_replies(&txn, project_id, user_id).await?;
        super::events::append(&txn, announce(&revoked)).await?;
        txn.commit().await?;
        Ok(Some(revoked))
    }

    /// Reserves a user's deletion: true when this caller holds it, false
    /// when the user is gone or another deletion reserved it after
    /// `reserved_before` (an older reservation is one whose owner died, and
    /// is taken over).
    pub async fn reserve_deletion(
        &self,
        project_id: &str,
        user_id: &str,
        now: i64,
        reserved_before: i64,
    ) -> StoreResult<bool> {
        let res = users::Entity::update_many()
            .col_expr(
                users::Column::DeletingSince,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(users::Column::ProjectId.eq(project_id))
            .filter(users::Column::Id.eq(user_id))
            .filter(unreserved(reserved_before))
            .exec(self.db())
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// Gives up a deletion reserved at `since` (the vendor refused it).
    pub async fn release_deletion(
        &self,
        project_id: &str,
        user_id: &str,
        since: i64,
    ) -> StoreResult<()> {
        users::Entity::update_many()
            .col_expr(
                users::Column::DeletingSince,
                sea_orm::sea_query::Expr::value(Option::<i64>::None),
            )
            .filter(users::Column::ProjectId.eq(project_id))
            .filter(users::Column::Id.eq(user_id))
            .filter(users::Column::DeletingSince.eq(since))
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// The pin of a resource (user or session) of a project.
    pub async fn pin(
        &self,
        project_id: &str,
        resource_id: &str,
    ) -> StoreResult<Option<pins::Model>> {
        Ok(
            pins::Entity::find_by_id((project_id.to_owned(), resource_id.to_owned()))
                .by_key(self.db())
                .await?,
        )
    }

    /// The pin of a vendor's resource in a project (a vendor session id
    /// back to authmux's).
    #[allow(
        clippy::disallowed_methods,
        reason = "no unique key covers a vendor's resource id: the LIMIT keeps this to one row"
    )]
    pub async fn pin_by_vendor_resource(
        &self,
        project_id: &str,
        vendor: &str,
        vendor_resource_id: &str,
    ) -> StoreResult<Option<pins::Model>> {
        Ok(pins::Entity::find()
            .filter(pins::Column::ProjectId.eq(project_id))
            .filter(pins::Column::Vendor.eq(vendor))
            .filter(pins::Column::VendorResourceId.eq(vendor_resource_id))
            .one(self.db())
            .await?)
    }

    /// Inserts many users with their pins at once (seeding, imports).
    pub async fn insert_users_bulk(
        &self,
        rows: Vec<(users::Model, pins::Model)>,
    ) -> StoreResult<()> {
        let txn = self.write_txn().await?;
        for chunk in rows.chunks(500) {
            users::Entity::insert_many(chunk.iter().map(|(u, _)| u.clone().into_active_model()))
                .exec(&txn)
                .await?;
            pins::Entity::insert_many(chunk.iter().map(|(_, p)| p.clone().into_active_model()))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }
}
