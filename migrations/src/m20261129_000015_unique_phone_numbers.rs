//! A phone number belongs to one user of a project, as it does at Clerk
//! (an identifier) and Supabase (`auth.users.phone` is UNIQUE): the unique
//! index is what keeps two users from taking one number at once. A
//! database whose users already share numbers is not changed; the
//! migration stops and says how to find them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    ProjectId,
    PhoneNumber,
}

const INDEX: &str = "users_project_phone";

/// Lists the numbers held by more than one user of a project.
const SHARED: &str = "SELECT project_id, phone_number, COUNT(*) FROM users \
     WHERE phone_number IS NOT NULL GROUP BY project_id, phone_number HAVING COUNT(*) > 1";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        let shared = db
            .query_all_raw(Statement::from_string(db.get_database_backend(), SHARED))
            .await?
            .len();
        if shared > 0 {
            return Err(DbErr::Migration(format!(
                "{shared} phone number(s) are held by more than one user of a project, and a \
                 phone number now belongs to one user; list them with `{SHARED}`, clear the \
                 extra ones (UPDATE users SET phone_number = NULL WHERE id = ...) and migrate again"
            )));
        }
        m.create_index(
            Index::create()
                .name(INDEX)
                .table(Users::Table)
                .col(Users::ProjectId)
                .col(Users::PhoneNumber)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name(INDEX).table(Users::Table).to_owned())
            .await
    }
}
