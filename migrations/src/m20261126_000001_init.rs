//! Projects, API keys, the user index with its vendor pins, native
//! credentials, the consent ledger and idempotency records.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    ProjectId,
    KeyHash,
    Prefix,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    ProjectId,
    Email,
    EmailLower,
    EmailVerified,
    Metadata,
    MfaEnabled,
    Vendor,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Pins {
    Table,
    ProjectId,
    ResourceId,
    Kind,
    Vendor,
    Mode,
    VendorResourceId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum NativeCredentials {
    Table,
    ProjectId,
    UserId,
    PasswordHash,
    TotpSecret,
    TotpLastStep,
}

#[derive(DeriveIden)]
enum ConsentEvents {
    Table,
    Id,
    ProjectId,
    UserId,
    Category,
    Granted,
    Source,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ConsentStates {
    Table,
    ProjectId,
    UserId,
    Category,
    Granted,
    Source,
    GrantedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    ProjectId,
    Key,
    Operation,
    RequestHash,
    Response,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Projects::Table)
                .col(string(Projects::Id).primary_key())
                .col(string_uniq(Projects::Name))
                .col(big_integer(Projects::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ApiKeys::Table)
                .col(string(ApiKeys::Id).primary_key())
                .col(string(ApiKeys::ProjectId))
                .col(string_uniq(ApiKeys::KeyHash))
                .col(string(ApiKeys::Prefix))
                .col(big_integer(ApiKeys::CreatedAt))
                .col(big_integer_null(ApiKeys::RevokedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(string(Users::Id).primary_key())
                .col(string(Users::ProjectId))
                .col(string(Users::Email))
                .col(string(Users::EmailLower))
                .col(boolean(Users::EmailVerified))
                .col(text(Users::Metadata))
                .col(boolean(Users::MfaEnabled))
                .col(string(Users::Vendor))
                .col(big_integer(Users::CreatedAt))
                .col(big_integer(Users::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("users_project_email")
                .table(Users::Table)
                .col(Users::ProjectId)
                .col(Users::EmailLower)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("users_project_id")
                .table(Users::Table)
                .col(Users::ProjectId)
                .col(Users::Id)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Pins::Table)
                .col(string(Pins::ProjectId))
                .col(string(Pins::ResourceId))
                .col(string(Pins::Kind))
                .col(string(Pins::Vendor))
                .col(string(Pins::Mode))
                .col(string(Pins::VendorResourceId))
                .col(big_integer(Pins::CreatedAt))
                .primary_key(Index::create().col(Pins::ProjectId).col(Pins::ResourceId))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(NativeCredentials::Table)
                .col(string(NativeCredentials::ProjectId))
                .col(string(NativeCredentials::UserId))
                .col(string_null(NativeCredentials::PasswordHash))
                .col(blob_null(NativeCredentials::TotpSecret))
                .col(big_integer_null(NativeCredentials::TotpLastStep))
                .primary_key(
                    Index::create()
                        .col(NativeCredentials::ProjectId)
                        .col(NativeCredentials::UserId),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ConsentEvents::Table)
                .col(string(ConsentEvents::Id).primary_key())
                .col(string(ConsentEvents::ProjectId))
                .col(string(ConsentEvents::UserId))
                .col(string(ConsentEvents::Category))
                .col(boolean(ConsentEvents::Granted))
                .col(string_null(ConsentEvents::Source))
                .col(big_integer(ConsentEvents::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("consent_events_user")
                .table(ConsentEvents::Table)
                .col(ConsentEvents::ProjectId)
                .col(ConsentEvents::UserId)
                .col(ConsentEvents::Id)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ConsentStates::Table)
                .col(string(ConsentStates::ProjectId))
                .col(string(ConsentStates::UserId))
                .col(string(ConsentStates::Category))
                .col(boolean(ConsentStates::Granted))
                .col(string_null(ConsentStates::Source))
                .col(big_integer_null(ConsentStates::GrantedAt))
                .col(big_integer(ConsentStates::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(ConsentStates::ProjectId)
                        .col(ConsentStates::UserId)
                        .col(ConsentStates::Category),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(IdempotencyKeys::Table)
                .col(string(IdempotencyKeys::ProjectId))
                .col(string(IdempotencyKeys::Key))
                .col(string(IdempotencyKeys::Operation))
                .col(string(IdempotencyKeys::RequestHash))
                .col(blob_null(IdempotencyKeys::Response))
                .col(big_integer(IdempotencyKeys::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(IdempotencyKeys::ProjectId)
                        .col(IdempotencyKeys::Key),
                )
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            IdempotencyKeys::Table.into_iden(),
            ConsentStates::Table.into_iden(),
            ConsentEvents::Table.into_iden(),
            NativeCredentials::Table.into_iden(),
            Pins::Table.into_iden(),
            Users::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            Projects::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
