//! Projects' own vendor credentials (sealed by the layer above).

use sea_orm::{
    ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, sea_query::OnConflict,
};

use super::entity::vendor_credentials;
use super::{Store, StoreResult};

impl Store {
    /// Inserts or replaces a project's credentials for a vendor;
    /// [`StoreError::Duplicate`](super::StoreError::Duplicate) when another
    /// of the project's credentials carries the same issuer.
    pub async fn put_vendor_credentials(&self, row: vendor_credentials::Model) -> StoreResult<()> {
        vendor_credentials::Entity::insert(row.into_active_model())
            .on_conflict(
                OnConflict::columns([
                    vendor_credentials::Column::ProjectId,
                    vendor_credentials::Column::Vendor,
                ])
                .update_columns([
                    vendor_credentials::Column::Config,
                    vendor_credentials::Column::UpdatedAt,
                    vendor_credentials::Column::Issuer,
                ])
                .to_owned(),
            )
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// A project's credentials for every vendor it brought keys for.
    pub async fn project_vendor_credentials(
        &self,
        project_id: &str,
    ) -> StoreResult<Vec<vendor_credentials::Model>> {
        Ok(vendor_credentials::Entity::find()
            .filter(vendor_credentials::Column::ProjectId.eq(project_id))
            .order_by_asc(vendor_credentials::Column::Vendor)
            .all(self.db())
            .await?)
    }

    /// Every project's credentials.
    pub async fn all_vendor_credentials(&self) -> StoreResult<Vec<vendor_credentials::Model>> {
        Ok(vendor_credentials::Entity::find()
            .order_by_asc(vendor_credentials::Column::ProjectId)
            .order_by_asc(vendor_credentials::Column::Vendor)
            .all(self.db())
            .await?)
    }

    /// Forgets a project's credentials for a vendor; false when none.
    pub async fn delete_vendor_credentials(
        &self,
        project_id: &str,
        vendor: &str,
    ) -> StoreResult<bool> {
        let res = vendor_credentials::Entity::delete_many()
            .filter(vendor_credentials::Column::ProjectId.eq(project_id))
            .filter(vendor_credentials::Column::Vendor.eq(vendor))
            .exec(self.db())
            .await?;
        Ok(res.rows_affected > 0)
    }
}
