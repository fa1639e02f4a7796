//! A user's webhook deliveries are handed out in the order of their
//! events' ids (the audit log's order) rather than of the deliveries' own
//! ids, which each replica makes by its own clock. The queue's index
//! follows: it ends with the event's id.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    EndpointId,
    OrderingKey,
    Status,
    EventId,
}

const BY_DELIVERY: &str = "webhook_deliveries_queue";
const BY_EVENT: &str = "webhook_deliveries_queue_by_event";

async fn swap(
    m: &SchemaManager<'_>,
    old: &str,
    new: &str,
    last: WebhookDeliveries,
) -> Result<(), DbErr> {
    m.drop_index(
        Index::drop()
            .name(old)
            .table(WebhookDeliveries::Table)
            .to_owned(),
    )
    .await?;
    m.create_index(
        Index::create()
            .name(new)
            .table(WebhookDeliveries::Table)
            .col(WebhookDeliveries::EndpointId)
            .col(WebhookDeliveries::OrderingKey)
            .col(WebhookDeliveries::Status)
            .col(last)
            .to_owned(),
    )
    .await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        swap(m, BY_DELIVERY, BY_EVENT, WebhookDeliveries::EventId).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        swap(m, BY_EVENT, BY_DELIVERY, WebhookDeliveries::Id).await
    }
}
