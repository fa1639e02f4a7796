//! TOTP codes already used by users whose factor a vendor holds, so that a
//! code works once there too.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TotpUses {
    Table,
    ProjectId,
    UserId,
    CodeHash,
    UsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(TotpUses::Table)
                .col(string(TotpUses::ProjectId))
                .col(string(TotpUses::UserId))
                .col(string(TotpUses::CodeHash))
                .col(big_integer(TotpUses::UsedAt))
                .primary_key(
                    Index::create()
                        .col(TotpUses::ProjectId)
                        .col(TotpUses::UserId)
                        .col(TotpUses::CodeHash),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(TotpUses::Table).to_owned())
            .await
    }
}
