//! Bring-your-own-key: a project's own vendor credentials, sealed.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum VendorCredentials {
    Table,
    ProjectId,
    Vendor,
    Config,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(VendorCredentials::Table)
                .col(string(VendorCredentials::ProjectId))
                .col(string(VendorCredentials::Vendor))
                .col(blob(VendorCredentials::Config))
                .col(big_integer(VendorCredentials::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(VendorCredentials::ProjectId)
                        .col(VendorCredentials::Vendor),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(VendorCredentials::Table).to_owned())
            .await
    }
}
