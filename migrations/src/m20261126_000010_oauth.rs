//! Sign-in with outside identity providers: each project's providers
//! (sealed), the state of sign-ins under way, and the identities linked to
//! users; and whether a user has a password (so the last way to sign in is
//! never unlinked).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OauthProviders {
    Table,
    ProjectId,
    Provider,
    Config,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OauthStates {
    Table,
    Id,
    ProjectId,
    Data,
    ExpiresAt,
    ConsumedAt,
    Pending,
    PendingUntil,
}

#[derive(DeriveIden)]
enum Identities {
    Table,
    ProjectId,
    Provider,
    Subject,
    UserId,
    Email,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    PasswordSet,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(OauthProviders::Table)
                .col(string(OauthProviders::ProjectId))
                .col(string(OauthProviders::Provider))
                .col(blob(OauthProviders::Config))
                .col(big_integer(OauthProviders::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(OauthProviders::ProjectId)
                        .col(OauthProviders::Provider),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(OauthStates::Table)
                .col(string(OauthStates::Id).primary_key())
                .col(string(OauthStates::ProjectId))
                .col(blob(OauthStates::Data))
                .col(big_integer(OauthStates::ExpiresAt))
                .col(big_integer_null(OauthStates::ConsumedAt))
                .col(blob_null(OauthStates::Pending))
                .col(big_integer_null(OauthStates::PendingUntil))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("oauth_states_expiry")
                .table(OauthStates::Table)
                .col(OauthStates::ExpiresAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Identities::Table)
                .col(string(Identities::ProjectId))
                .col(string(Identities::Provider))
                .col(string(Identities::Subject))
                .col(string(Identities::UserId))
                .col(string_null(Identities::Email))
                .col(big_integer(Identities::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(Identities::ProjectId)
                        .col(Identities::Provider)
                        .col(Identities::Subject),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("identities_user")
                .table(Identities::Table)
                .col(Identities::ProjectId)
                .col(Identities::UserId)
                .to_owned(),
        )
        .await?;
        // Users made before this migration keep whatever way in they had.
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .add_column(boolean(Users::PasswordSet).default(true))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .drop_column(Users::PasswordSet)
                .to_owned(),
        )
        .await?;
        for t in [
            Identities::Table.into_iden(),
            OauthStates::Table.into_iden(),
            OauthProviders::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
