//! Webhook endpoints of a project and the deliveries made to them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

use super::{Domain, Error, ErrorCode, Project, Result, new_id};
use crate::events::delivery::secret_context;
use crate::events::ssrf;
use crate::store::entity::{webhook_deliveries, webhook_endpoints};

/// The most endpoints one project may have.
pub const MAX_ENDPOINTS: usize = 20;

/// An endpoint as callers see it (never its secret).
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `whe_…`
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// The event types sent; empty means all.
    pub event_types: Vec<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms, when disabled.
    pub disabled_at: Option<i64>,
}

impl From<webhook_endpoints::Model> for Endpoint {
    fn from(row: webhook_endpoints::Model) -> Self {
        Endpoint {
            event_types: serde_json::from_str(&row.event_types).unwrap_or_default(),
            id: row.id,
            url: row.url,
            created_at: row.created_at,
            disabled_at: row.disabled_at,
        }
    }
}

/// A new endpoint and its signing secret, shown once.
#[derive(Clone, Debug)]
pub struct CreatedEndpoint {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// `whsec_…`
    pub secret: String,
}

/// A delivery and its attempts so far.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// `dlv_…`
    pub id: String,
    /// Its endpoint.
    pub endpoint_id: String,
    /// The event's id (the `webhook-id`).
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// The last answer's status code.
    pub last_status_code: Option<i32>,
    /// What went wrong last.
    pub last_error: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms, while pending.
    pub next_attempt_at: Option<i64>,
    /// Unix ms, once delivered.
    pub delivered_at: Option<i64>,
}

impl From<webhook_deliveries::Model> for Delivery {
    fn from(row: webhook_deliveries::Model) -> Self {
        let event_type = serde_json::from_str::<serde_json::Value>(&row.payload)
            .ok()
            .and_then(|v| v["type"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let pending = row.status == crate::store::webhooks::PENDING;
        Delivery {
            id: row.id,
            endpoint_id: row.endpoint_id,
            event_id: row.event_id,
            event_type,
            status: row.status,
            attempts: row.attempts,
            last_status_code: row.last_status,
            last_error: row.last_error,
            created_at: row.created_at,
            next_attempt_at: pending.then_some(row.next_attempt_at),
            delivered_at: row.delivered_at,
        }
    }
}

/// A page of deliveries.
#[derive(Clone, Debug)]
pub struct DeliveryPage {
    /// Newest first.
    pub items: Vec<Delivery>,
    /// The next page's cursor, when there may be one.
    pub next_cursor: Option<String>,
}

fn not_found(what: &str, id: &str) -> Error {
    Error::new(
        ErrorCode::NotFound,
        format!("no {what} {id} in this project"),
    )
}

impl Domain {
    /// Adds an endpoint: `https` (or loopback `http` when the operator
    /// allows it), never to a private or reserved address literal. Its
    /// secret is sealed at rest and returned only here.
    pub async fn create_webhook_endpoint(
        &self,
        project: &Project,
        url: &str,
        event_types: Vec<String>,
    ) -> Result<CreatedEndpoint> {
        let url =
            ssrf::check_url(url, self.webhooks.allow_loopback).map_err(|e| Error::invalid(e.0))?;
        let mut types = event_types;
        types.sort();
        types.dedup();
        let mut key = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let id = new_id("whe");
        let row = webhook_endpoints::Model {
            id: id.clone(),
            project_id: project.id.clone(),
            url: url.to_string(),
            event_types: serde_json::to_string(&types).expect("strings serialise"),
            secret: self.master.seal(&key, &secret_context(&id)),
            created_at: self.now(),
            disabled_at: None,
        };
        if !self
            .store
            .insert_webhook_endpoint(row.clone(), MAX_ENDPOINTS as u64)
            .await?
        {
            return Err(Error::new(
                ErrorCode::LimitReached,
                format!("a project may have at most {MAX_ENDPOINTS} webhook endpoints"),
            ));
        }
        Ok(CreatedEndpoint {
            endpoint: row.into(),
            secret: format!("whsec_{}", STANDARD.encode(key)),
        })
    }

    /// A project's endpoints, oldest first.
    pub async fn webhook_endpoints(&self, project: &Project) -> Result<Vec<Endpoint>> {
        Ok(self
            .store
            .webhook_endpoints(&project.id)
            .await?
            .into_iter()
            .map(Endpoint::from)
            .collect())
    }

    /// Removes an endpoint and the deliveries queued for it.
    pub async fn delete_webhook_endpoint(&self, project: &Project, id: &str) -> Result<()> {
        if self.store.delete_webhook_endpoint(&project.id, id).await? {
            Ok(())
        } else {
            Err(not_found("webhook endpoint", id))
        }
    }

    /// Deliveries, newest first, of one endpoint when given.
    pub async fn webhook_deliveries(
        &self,
        project: &Project,
        endpoint_id: Option<&str>,
        cursor: Option<&str>,
        limit: Option<i32>,
    ) -> Result<DeliveryPage> {
        let fetch = super::paging::fetch_for(limit)?;
        let rows = self
            .store
            .webhook_deliveries(&project.id, endpoint_id, cursor, fetch)
            .await?;
        let (rows, next_cursor) = super::paging::page(rows, fetch, |r| &r.id);
        Ok(DeliveryPage {
            items: rows.into_iter().map(Delivery::from).collect(),
            next_cursor,
        })
    }

    /// Sends a delivery again now, with a fresh retry schedule, enabling
    /// its endpoint if it was disabled.
    pub async fn replay_webhook_delivery(&self, project: &Project, id: &str) -> Result<Delivery> {
        self.store
            .replay_webhook_delivery(&project.id, id, self.now())
            .await?
            .map(Delivery::from)
            .ok_or_else(|| not_found("webhook delivery", id))
    }
}
