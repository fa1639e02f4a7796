//! Signing keys, sessions, refresh tokens (current and rotated, for reuse
//! detection) and failed sign-in attempts (for throttling).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    Alg,
    PrivateKey,
    PublicJwk,
    CreatedAt,
    RetiredAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    ProjectId,
    UserId,
    Method,
    Amr,
    CreatedAt,
    LastIssuedAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    TokenHash,
    ProjectId,
    SessionId,
    CreatedAt,
    RotatedAt,
}

#[derive(DeriveIden)]
enum AuthFailures {
    Table,
    Id,
    ProjectId,
    UserId,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(SigningKeys::Table)
                .col(string(SigningKeys::Kid).primary_key())
                .col(string(SigningKeys::Alg))
                .col(blob(SigningKeys::PrivateKey))
                .col(text(SigningKeys::PublicJwk))
                .col(big_integer(SigningKeys::CreatedAt))
                .col(big_integer_null(SigningKeys::RetiredAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Sessions::Table)
                .col(string(Sessions::Id).primary_key())
                .col(string(Sessions::ProjectId))
                .col(string(Sessions::UserId))
                .col(string(Sessions::Method))
                .col(text(Sessions::Amr))
                .col(big_integer(Sessions::CreatedAt))
                .col(big_integer(Sessions::LastIssuedAt))
                .col(big_integer(Sessions::ExpiresAt))
                .col(big_integer_null(Sessions::RevokedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sessions_project_user")
                .table(Sessions::Table)
                .col(Sessions::ProjectId)
                .col(Sessions::UserId)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sessions_revoked_at")
                .table(Sessions::Table)
                .col(Sessions::RevokedAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RefreshTokens::Table)
                .col(string(RefreshTokens::TokenHash).primary_key())
                .col(string(RefreshTokens::ProjectId))
                .col(string(RefreshTokens::SessionId))
                .col(big_integer(RefreshTokens::CreatedAt))
                .col(big_integer_null(RefreshTokens::RotatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("refresh_tokens_session")
                .table(RefreshTokens::Table)
                .col(RefreshTokens::SessionId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AuthFailures::Table)
                .col(string(AuthFailures::Id).primary_key())
                .col(string(AuthFailures::ProjectId))
                .col(string(AuthFailures::UserId))
                .col(big_integer(AuthFailures::At))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("auth_failures_user_at")
                .table(AuthFailures::Table)
                .col(AuthFailures::ProjectId)
                .col(AuthFailures::UserId)
                .col(AuthFailures::At)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuthFailures::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            Sessions::Table.into_iden(),
            SigningKeys::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
