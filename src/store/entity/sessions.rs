//! The `sessions` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub method: String,
    #[sea_orm(column_type = "Text")]
    pub amr: String,
    pub created_at: i64,
    pub last_issued_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub vendor_credential: Option<Vec<u8>>,
    /// Revoked here, not yet at the vendor.
    pub vendor_pending: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
