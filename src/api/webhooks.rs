//! `WebhookService`.

use tonic::Request;

use super::convert::timestamp;
use super::{Api, ApiResult, project, reply};
use crate::domain::{Delivery, Endpoint};
use crate::pb::v1 as pb;
use crate::pb::v1::webhook_service_server::WebhookService;

impl From<Endpoint> for pb::WebhookEndpoint {
    fn from(e: Endpoint) -> Self {
        pb::WebhookEndpoint {
            endpoint_id: e.id,
            url: e.url,
            event_types: e.event_types,
            created_at: Some(timestamp(e.created_at)),
            disabled_at: e.disabled_at.map(timestamp),
        }
    }
}

impl From<Delivery> for pb::WebhookDelivery {
    fn from(d: Delivery) -> Self {
        pb::WebhookDelivery {
            delivery_id: d.id,
            endpoint_id: d.endpoint_id,
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            created_at: Some(timestamp(d.created_at)),
            next_attempt_at: d.next_attempt_at.map(timestamp),
            delivered_at: d.delivered_at.map(timestamp),
        }
    }
}

#[tonic::async_trait]
impl WebhookService for Api {
    async fn create_webhook_endpoint(
        &self,
        req: Request<pb::CreateWebhookEndpointRequest>,
    ) -> ApiResult<pb::CreatedWebhookEndpoint> {
        let project = project(&req)?;
        let r = req.into_inner();
        reply(
            self.domain
                .create_webhook_endpoint(&project, &r.url, r.event_types)
                .await
                .map(|c| pb::CreatedWebhookEndpoint {
                    endpoint: Some(c.endpoint.into()),
                    secret: c.secret,
                }),
        )
    }

    async fn list_webhook_endpoints(
        &self,
        req: Request<pb::ListWebhookEndpointsRequest>,
    ) -> ApiResult<pb::ListWebhookEndpointsReply> {
        let project = project(&req)?;
        reply(self.domain.webhook_endpoints(&project).await.map(|list| {
            pb::ListWebhookEndpointsReply {
                items: list.into_iter().map(Into::into).collect(),
            }
        }))
    }

    async fn delete_webhook_endpoint(
        &self,
        req: Request<pb::DeleteWebhookEndpointRequest>,
    ) -> ApiResult<pb::WebhookOkReply> {
        let project = project(&req)?;
        reply(
            self.domain
                .delete_webhook_endpoint(&project, &req.get_ref().endpoint_id)
                .await
                .map(|()| pb::WebhookOkReply { ok: true }),
        )
    }

    async fn list_webhook_deliveries(
        &self,
        req: Request<pb::ListWebhookDeliveriesRequest>,
    ) -> ApiResult<pb::ListWebhookDeliveriesReply> {
        let project = project(&req)?;
        let r = req.get_ref();
        reply(
            self.domain
                .webhook_deliveries(
                    &project,
                    r.endpoint_id.as_deref(),
                    r.cursor.as_deref(),
                    r.limit,
                )
                .await
                .map(|page| pb::ListWebhookDeliveriesReply {
                    items: page.items.into_iter().map(Into::into).collect(),
                    next_cursor: page.next_cursor,
                }),
        )
    }

    async fn replay_webhook_delivery(
        &self,
        req: Request<pb::ReplayWebhookDeliveryRequest>,
    ) -> ApiResult<pb::WebhookDelivery> {
        let project = project(&req)?;
        reply(
            self.domain
                .replay_webhook_delivery(&project, &req.get_ref().delivery_id)
                .await
                .map(Into::into),
        )
    }
}
