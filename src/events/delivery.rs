//! The delivery worker every replica runs: it claims due deliveries (a
//! lease, so a replica that dies mid-delivery only delays them), signs
//! each with its endpoint's secret as Standard Webhooks says, posts it
//! with a bounded timeout and no redirects, and records the attempt: a 2xx
//! is delivered; anything else is retried on [`RETRY_SCHEDULE`] with
//! jitter, about three days in all, then given up (and the endpoint
//! disabled, with a `webhook.endpoint_disabled` event).

use std::sync::{Arc, Weak};
use std::time::Duration;

use rand::Rng;
use standardwebhooks::Webhook;

use super::ssrf::{self, GuardedResolver};
use crate::clock::Clock;
use crate::crypto::MasterKey;
use crate::store::Store;
use crate::store::entity::{events, webhook_deliveries, webhook_endpoints};
use crate::store::webhooks::Attempt;

/// The waits before the 2nd, 3rd, … attempt: 5 s, 5 min, 30 min, 2 h,
/// 5 h, 10 h, 14 h, 20 h and 20 h (71 h 35 min in all, each ±10%), after
/// Svix's schedule stretched to about three days.
pub const RETRY_SCHEDULE: [Duration; 9] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(14 * 3600),
    Duration::from_secs(20 * 3600),
    Duration::from_secs(20 * 3600),
];

/// The most deliveries one worker has in flight.
const BATCH: u64 = 64;
/// The most of a reply body kept as the error of a failed attempt.
const ERROR_BODY_BYTES: usize = 256;

/// The operator's webhook settings.
#[derive(Clone, Debug)]
pub struct WebhookPolicy {
    /// Longest wait for an endpoint's answer.
    pub timeout: Duration,
    /// Whether `http` to loopback is allowed (tests, local receivers).
    pub allow_loopback: bool,
    /// How often the worker looks for due deliveries.
    pub poll: Duration,
}

impl Default for WebhookPolicy {
    fn default() -> Self {
        WebhookPolicy {
            timeout: Duration::from_secs(10),
            allow_loopback: false,
            poll: Duration::from_millis(500),
        }
    }
}

/// The context a secret is sealed under: its endpoint.
pub fn secret_context(endpoint_id: &str) -> Vec<u8> {
    format!("webhook-secret:{endpoint_id}").into_bytes()
}

/// One replica's delivery worker.
pub struct Worker {
    store: Store,
    master: MasterKey,
    policy: WebhookPolicy,
    http: reqwest::Client,
    id: String,
}

impl Worker {
    /// A worker over `store`, opening secrets with `master`.
    pub fn new(store: Store, master: MasterKey, policy: WebhookPolicy) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .dns_resolver(Arc::new(GuardedResolver {
                allow_loopback: policy.allow_loopback,
            }))
            .user_agent(concat!("authmux-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a reqwest client with static settings");
        Worker {
            store,
            master,
            policy,
            http,
            id: format!("wkr_{}", uuid::Uuid::now_v7().simple()),
        }
    }

    fn clock(&self) -> &Arc<Clock> {
        self.store.clock()
    }

    /// Runs until `alive` is gone (the domain that owns the worker).
    pub fn spawn<T: Send + Sync + 'static>(self, alive: Weak<T>) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.policy.poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if alive.strong_count() == 0 {
                    break;
                }
                loop {
                    match self.run_once().await {
                        Ok(n) if n as u64 == BATCH => continue,
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "webhook delivery round failed");
                            break;
                        }
                    }
                }
            }
        });
    }

    /// Claims what is due and delivers it; how many were attempted.
    pub async fn run_once(&self) -> Result<usize, crate::store::StoreError> {
        let now = self.clock().now_millis();
        // Long enough for every attempt of the batch to finish or time
        // out; a replica that dies holding a claim delays it this long.
        let lease = 2 * self.policy.timeout.as_millis() as i64 + 5_000;
        let claimed = self
            .store
            .claim_deliveries(&self.id, now, now + lease, BATCH)
            .await?;
        let n = claimed.len();
        let results = futures::future::join_all(
            claimed
                .into_iter()
                .map(|(delivery, endpoint)| self.deliver(delivery, endpoint)),
        )
        .await;
        for r in results {
            r?;
        }
        Ok(n)
    }

    async fn deliver(
        &self,
        delivery: webhook_deliveries::Model,
        endpoint: webhook_endpoints::Model,
    ) -> Result<(), crate::store::StoreError> {
        let outcome = match self.attempt(&delivery, &endpoint).await {
            Ok(status) => Attempt::Delivered { status },
            Err((status, error)) => {
                let done = delivery.attempts as usize;
                let retry_at = RETRY_SCHEDULE.get(done).map(|wait| {
                    let jitter = rand::thread_rng().gen_range(0.9..1.1);
                    self.clock().now_millis() + (wait.as_millis() as f64 * jitter) as i64
                });
                tracing::info!(
                    delivery = %delivery.id,
                    endpoint = %endpoint.id,
                    attempt = done + 1,
                    status,
                    error = %error,
                    retrying = retry_at.is_some(),
                    "webhook delivery failed"
                );
                Attempt::Failed {
                    status,
                    error,
                    retry_at,
                }
            }
        };
        let now = self.clock().now_millis();
        let disabled = self
            .store
            .finish_delivery(&delivery, &self.id, now, &outcome, || {
                disabled_event(&endpoint, &delivery, now)
            })
            .await?;
        if disabled {
            tracing::warn!(endpoint = %endpoint.id, "webhook endpoint disabled after a delivery was given up");
        }
        Ok(())
    }

    /// One POST; the status of a 2xx, or what went wrong.
    async fn attempt(
        &self,
        delivery: &webhook_deliveries::Model,
        endpoint: &webhook_endpoints::Model,
    ) -> Result<u16, (Option<u16>, String)> {
        let url = ssrf::check_url(&endpoint.url, self.policy.allow_loopback)
            .map_err(|e| (None, e.to_string()))?;
        let secret = self
            .master
            .open(&endpoint.secret, &secret_context(&endpoint.id))
            .map_err(|_| (None, "the endpoint's secret could not be opened".to_owned()))?;
        // The signature's time is a statement to the receiver, who checks
        // it against its own clock (Standard Webhooks: within 5 minutes).
        let sent_at = Clock::default().now_secs();
        let signature = Webhook::from_bytes(secret)
            .and_then(|w| w.sign(&delivery.event_id, sent_at, delivery.payload.as_bytes()))
            .map_err(|e| (None, format!("signing: {e}")))?;
        let resp = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header(standardwebhooks::HEADER_WEBHOOK_ID, &delivery.event_id)
            .header(
                standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
                sent_at.to_string(),
            )
            .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature)
            .body(delivery.payload.clone())
            .send()
            .await
            .map_err(|e| (None, describe(&e)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(status.as_u16());
        }
        let body = resp.bytes().await.unwrap_or_default();
        let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_BYTES)]).into_owned();
        Err((Some(status.as_u16()), format!("HTTP {status}: {text}")))
    }
}

/// What a failed send says, without the URL (which may carry a token in
/// its path).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "redirect refused"
    } else {
        "request failed"
    };
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(c) = cause {
        detail = c.to_string();
        cause = c.source();
    }
    if detail.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {detail}")
    }
}

fn disabled_event(
    endpoint: &webhook_endpoints::Model,
    delivery: &webhook_deliveries::Model,
    now: i64,
) -> events::Model {
    events::Model {
        id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
        project_id: endpoint.project_id.clone(),
        kind: "webhook.endpoint_disabled".to_owned(),
        user_id: None,
        api_key_id: None,
        request_id: None,
        occurred_at: now,
        data: serde_json::json!({
            "endpoint_id": endpoint.id,
            "delivery_id": delivery.id,
            "reason": "a delivery failed on every attempt",
        })
        .to_string(),
    }
}
