//! A project's own vendor credentials record the `iss` their tokens carry,
//! unique within the project: tokens are routed by `iss`, and the unique
//! index is what keeps two credentials set at once (from two replicas, say)
//! from both taking the same one. Rows from before carry none until they
//! are set again.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum VendorCredentials {
    Table,
    ProjectId,
    Issuer,
}

const INDEX: &str = "vendor_credentials_project_issuer";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(VendorCredentials::Table)
                .add_column(string_null(VendorCredentials::Issuer))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name(INDEX)
                .table(VendorCredentials::Table)
                .col(VendorCredentials::ProjectId)
                .col(VendorCredentials::Issuer)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name(INDEX)
                .table(VendorCredentials::Table)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(VendorCredentials::Table)
                .drop_column(VendorCredentials::Issuer)
                .to_owned(),
        )
        .await
    }
}
