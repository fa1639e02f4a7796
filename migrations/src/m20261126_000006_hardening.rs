//! Throttles per kind of credential (password, MFA).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuthFailures {
    Table,
    ProjectId,
    UserId,
    Kind,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(AuthFailures::Table)
                .add_column(string(AuthFailures::Kind).default("password"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("auth_failures_user_kind_at")
                .table(AuthFailures::Table)
                .col(AuthFailures::ProjectId)
                .col(AuthFailures::UserId)
                .col(AuthFailures::Kind)
                .col(AuthFailures::At)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("auth_failures_user_kind_at")
                .table(AuthFailures::Table)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(AuthFailures::Table)
                .drop_column(AuthFailures::Kind)
                .to_owned(),
        )
        .await
    }
}
