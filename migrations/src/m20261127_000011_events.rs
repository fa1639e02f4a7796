//! The event log: every state change appends its event here in the same
//! transaction (a transactional outbox). The audit log reads it, the GDPR
//! export includes a user's part of it, and a purge drops what is older
//! than the retention.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    ProjectId,
    Kind,
    UserId,
    ApiKeyId,
    RequestId,
    OccurredAt,
    Data,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Events::Table)
                .col(string(Events::Id).primary_key())
                .col(string(Events::ProjectId))
                .col(string(Events::Kind))
                .col(string_null(Events::UserId))
                .col(string_null(Events::ApiKeyId))
                .col(string_null(Events::RequestId))
                .col(big_integer(Events::OccurredAt))
                .col(text(Events::Data))
                .to_owned(),
        )
        .await?;
        for (name, cols) in [
            ("events_project", vec![Events::ProjectId, Events::Id]),
            (
                "events_project_user",
                vec![Events::ProjectId, Events::UserId, Events::Id],
            ),
            ("events_occurred", vec![Events::OccurredAt]),
        ] {
            let mut index = Index::create();
            index.name(name).table(Events::Table);
            for col in cols {
                index.col(col);
            }
            m.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Events::Table).to_owned())
            .await
    }
}
