//! Vendor sessions: the sealed vendor credential kept with a session, and
//! a lookup from a vendor's resource id back to authmux's.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    VendorCredential,
}

#[derive(DeriveIden)]
enum Pins {
    Table,
    ProjectId,
    Vendor,
    VendorResourceId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Sessions::Table)
                .add_column(blob_null(Sessions::VendorCredential))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("pins_vendor_resource")
                .table(Pins::Table)
                .col(Pins::ProjectId)
                .col(Pins::Vendor)
                .col(Pins::VendorResourceId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("pins_vendor_resource")
                .table(Pins::Table)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Sessions::Table)
                .drop_column(Sessions::VendorCredential)
                .to_owned(),
        )
        .await
    }
}
