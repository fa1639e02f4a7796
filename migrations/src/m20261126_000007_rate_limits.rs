//! A project's own request rate limit, when it differs from the default.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    RateLimitPerSecond,
    RateLimitBurst,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Projects::Table)
                .add_column(big_integer_null(Projects::RateLimitPerSecond))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Projects::Table)
                .add_column(big_integer_null(Projects::RateLimitBurst))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for col in [Projects::RateLimitPerSecond, Projects::RateLimitBurst] {
            m.alter_table(
                Table::alter()
                    .table(Projects::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
