//! Credentials held by the built-in provider: password hashes and
//! encrypted TOTP secrets.

use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, sea_query::OnConflict};

use super::entity::native_credentials;
use super::{ByKey, Store, StoreResult};

impl Store {
    /// Inserts or replaces a user's native credentials.
    pub async fn put_native_credentials(&self, row: native_credentials::Model) -> StoreResult<()> {
        native_credentials::Entity::insert(row.into_active_model())
            .on_conflict(
                OnConflict::columns([
                    native_credentials::Column::ProjectId,
                    native_credentials::Column::UserId,
                ])
                .update_columns([
                    native_credentials::Column::PasswordHash,
                    native_credentials::Column::TotpSecret,
                    native_credentials::Column::TotpLastStep,
                ])
                .to_owned(),
            )
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// Sets the password hash of a user's credentials, and nothing else;
    /// false when the user has none (it was deleted): a write never
    /// brings back credentials a delete erased.
    pub async fn set_native_password(
        &self,
        project_id: &str,
        user_id: &str,
        hash: String,
    ) -> StoreResult<bool> {
        self.update_native_credentials(
            project_id,
            user_id,
            [(native_credentials::Column::PasswordHash, Some(hash).into())],
        )
        .await
    }

    /// Sets (or clears) the sealed TOTP secret of a user's credentials,
    /// forgetting the last step used, and nothing else; false when the
    /// user has none (it was deleted).
    pub async fn set_native_totp(
        &self,
        project_id: &str,
        user_id: &str,
        sealed: Option<Vec<u8>>,
    ) -> StoreResult<bool> {
        self.update_native_credentials(
            project_id,
            user_id,
            [
                (native_credentials::Column::TotpSecret, sealed.into()),
                (
                    native_credentials::Column::TotpLastStep,
                    Option::<i64>::None.into(),
                ),
            ],
        )
        .await
    }

    /// One update of the given columns of an existing credentials row.
    async fn update_native_credentials<const N: usize>(
        &self,
        project_id: &str,
        user_id: &str,
        columns: [(native_credentials::Column, sea_orm::Value); N],
    ) -> StoreResult<bool> {
        let mut update = native_credentials::Entity::update_many()
            .filter(native_credentials::Column::ProjectId.eq(project_id))
            .filter(native_credentials::Column::UserId.eq(user_id));
        for (column, value) in columns {
            update = update.col_expr(column, sea_orm::sea_query::Expr::value(value));
        }
        Ok(update.exec(self.db()).await?.rows_affected == 1)
    }

    /// A user's native credentials, if any.
    pub async fn native_credentials(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<native_credentials::Model>> {
        Ok(
            native_credentials::Entity::find_by_id((project_id.to_owned(), user_id.to_owned()))
                .by_key(self.db())
                .await?,
        )
    }

    /// Records `step` as the last TOTP step used, unless that step (or a
    /// later one) was already used: a code works once.
    pub async fn claim_totp_step(
        &self,
        project_id: &str,
        user_id: &str,
        step: i64,
    ) -> StoreResult<bool> {
        let res = native_credentials::Entity::update_many()
            .col_expr(
                native_credentials::Column::TotpLastStep,
                sea_orm::sea_query::Expr::value(step),
            )
            .filter(native_credentials::Column::ProjectId.eq(project_id))
            .filter(native_credentials::Column::UserId.eq(user_id))
            .filter(
                sea_orm::Condition::any()
                    .add(native_credentials::Column::TotpLastStep.is_null())
                    .add(native_credentials::Column::TotpLastStep.lt(step)),
            )
            .exec(self.db())
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// Records a TOTP code as used; false when the same code was used in
    /// the last `window_ms` (older records are taken over).
    pub async fn claim_totp_code(
        &self,
        project_id: &str,
        user_id: &str,
        code_hash: &str,
        now: i64,
        window_ms: i64,
    ) -> StoreResult<bool> {
        use super::entity::totp_uses;
        let row = totp_uses::Model {
            project_id: project_id.to_owned(),
            user_id: user_id.to_owned(),
            code_hash: code_hash.to_owned(),
            used_at: now,
        };
        match totp_uses::Entity::insert(row.into_active_model())
            .exec(self.db())
            .await
            .map_err(super::StoreError::from)
        {
            Ok(_) => Ok(true),
            Err(super::StoreError::Duplicate(_)) => {
                let res = totp_uses::Entity::update_many()
                    .col_expr(
                        totp_uses::Column::UsedAt,
                        sea_orm::sea_query::Expr::value(now),
                    )
                    .filter(totp_uses::Column::ProjectId.eq(project_id))
                    .filter(totp_uses::Column::UserId.eq(user_id))
                    .filter(totp_uses::Column::CodeHash.eq(code_hash))
                    .filter(totp_uses::Column::UsedAt.lt(now - window_ms))
                    .exec(self.db())
                    .await?;
                Ok(res.rows_affected == 1)
            }
            Err(e) => Err(e),
        }
    }

    /// Removes a user's native credentials.
    pub async fn delete_native_credentials(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> StoreResult<()> {
        native_credentials::Entity::delete_many()
            .filter(native_credentials::Column::ProjectId.eq(project_id))
            .filter(native_credentials::Column::UserId.eq(user_id))
            .exec(self.db())
            .await?;
        Ok(())
    }
}
