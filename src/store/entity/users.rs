//! The `users` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub project_id: String,
    pub email: String,
    pub email_lower: String,
    pub email_verified: bool,
    #[sea_orm(column_type = "Text")]
    pub metadata: String,
    pub mfa_enabled: bool,
    pub vendor: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// E.164, when set.
    pub phone_number: Option<String>,
    /// Whether the user can sign in with a password.
    pub password_set: bool,
    /// Unix ms when a deletion reserved the user, until it finishes.
    pub deleting_since: Option<i64>,
    /// Raised by every password change: a sign-in stores its session only
    /// while the version it saw before checking the password holds.
    pub password_version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
