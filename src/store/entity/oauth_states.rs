//! The `oauth_states` table: sign-ins under way, keyed by the SHA-256 of
//! their state, with what they are bound to sealed in `data`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_states")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub project_id: String,
    pub data: Vec<u8>,
    pub expires_at: i64,
    /// When the code was exchanged (a state is used once).
    pub consumed_at: Option<i64>,
    /// A sign-in waiting for its second factor, sealed.
    pub pending: Option<Vec<u8>>,
    pub pending_until: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
