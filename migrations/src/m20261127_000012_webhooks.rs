//! Webhook endpoints and their deliveries. A delivery row is written in
//! the transaction of the event it carries, one per subscribed endpoint,
//! and is claimed by one replica at a time until delivered or given up.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    ProjectId,
    Url,
    EventTypes,
    Secret,
    CreatedAt,
    DisabledAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    ProjectId,
    EndpointId,
    EventId,
    OrderingKey,
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    ClaimedUntil,
    ClaimedBy,
    LastStatus,
    LastError,
    CreatedAt,
    DeliveredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(WebhookEndpoints::Table)
                .col(string(WebhookEndpoints::Id).primary_key())
                .col(string(WebhookEndpoints::ProjectId))
                .col(text(WebhookEndpoints::Url))
                .col(text(WebhookEndpoints::EventTypes))
                .col(blob(WebhookEndpoints::Secret))
                .col(big_integer(WebhookEndpoints::CreatedAt))
                .col(big_integer_null(WebhookEndpoints::DisabledAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("webhook_endpoints_project")
                .table(WebhookEndpoints::Table)
                .col(WebhookEndpoints::ProjectId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(WebhookDeliveries::Table)
                .col(string(WebhookDeliveries::Id).primary_key())
                .col(string(WebhookDeliveries::ProjectId))
                .col(string(WebhookDeliveries::EndpointId))
                .col(string(WebhookDeliveries::EventId))
                .col(string(WebhookDeliveries::OrderingKey))
                .col(text(WebhookDeliveries::Payload))
                .col(string(WebhookDeliveries::Status))
                .col(integer(WebhookDeliveries::Attempts).default(0))
                .col(big_integer(WebhookDeliveries::NextAttemptAt))
                .col(big_integer_null(WebhookDeliveries::ClaimedUntil))
                .col(string_null(WebhookDeliveries::ClaimedBy))
                .col(integer_null(WebhookDeliveries::LastStatus))
                .col(text_null(WebhookDeliveries::LastError))
                .col(big_integer(WebhookDeliveries::CreatedAt))
                .col(big_integer_null(WebhookDeliveries::DeliveredAt))
                .to_owned(),
        )
        .await?;
        for (name, cols) in [
            (
                "webhook_deliveries_due",
                vec![WebhookDeliveries::Status, WebhookDeliveries::NextAttemptAt],
            ),
            (
                "webhook_deliveries_queue",
                vec![
                    WebhookDeliveries::EndpointId,
                    WebhookDeliveries::OrderingKey,
                    WebhookDeliveries::Status,
                    WebhookDeliveries::Id,
                ],
            ),
            (
                "webhook_deliveries_project",
                vec![WebhookDeliveries::ProjectId, WebhookDeliveries::Id],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(WebhookDeliveries::Table);
            for col in cols {
                index.col(col);
            }
            m.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(WebhookEndpoints::Table).to_owned())
            .await
    }
}
