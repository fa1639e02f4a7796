//! A stored idempotent reply about a user (the user made or changed, a
//! session opened for it) notes the user, so that the user's deletion can
//! erase the reply with the rest of the user's data. An erased record
//! keeps its key and request fingerprint, so a repeat is still recognised
//! and makes no second effect, but it no longer holds the reply.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    ProjectId,
    UserId,
    Erased,
}

const INDEX: &str = "idx_idempotency_keys_user";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        m.alter_table(
            Table::alter()
                .table(IdempotencyKeys::Table)
                .add_column(string_null(IdempotencyKeys::UserId))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(IdempotencyKeys::Table)
                .add_column(boolean(IdempotencyKeys::Erased).default(false))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name(INDEX)
                .table(IdempotencyKeys::Table)
                .col(IdempotencyKeys::ProjectId)
                .col(IdempotencyKeys::UserId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name(INDEX)
                .table(IdempotencyKeys::Table)
                .to_owned(),
        )
        .await?;
        for column in [IdempotencyKeys::Erased, IdempotencyKeys::UserId] {
            m.alter_table(
                Table::alter()
                    .table(IdempotencyKeys::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
