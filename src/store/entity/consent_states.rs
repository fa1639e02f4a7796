//! The `consent_states` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "consent_states")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub project_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub category: String,
    pub granted: bool,
    pub source: Option<String>,
    pub granted_at: Option<i64>,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The state a ledger entry leaves its category in: the source and
    /// time of a grant are kept while it stands.
    pub fn after(entry: &super::consent_events::Model) -> Self {
        Model {
            project_id: entry.project_id.clone(),
            user_id: entry.user_id.clone(),
            category: entry.category.clone(),
            granted: entry.granted,
            source: entry.source.clone().filter(|_| entry.granted),
            granted_at: entry.granted.then_some(entry.created_at),
            updated_at: entry.created_at,
        }
    }
}
