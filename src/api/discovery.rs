//! `DiscoveryService`.

use tonic::Request;

use super::{Api, ApiResult, project, reply};
use crate::pb::v1 as pb;
use crate::pb::v1::discovery_service_server::DiscoveryService;

#[tonic::async_trait]
impl DiscoveryService for Api {
    async fn get_capability(
        &self,
        req: Request<pb::GetCapabilityRequest>,
    ) -> ApiResult<pb::GetCapabilityReply> {
        let project = project(&req)?;
        let found = self
            .domain
            .discover(&project, &req.get_ref().capability)
            .await;
        reply(found.map(|c| {
            pb::GetCapabilityReply {
                capability: c.capability,
                vendors: c
                    .vendors
                    .into_iter()
                    .map(|v| pb::VendorStatus {
                        vendor: v.vendor.as_str().to_owned(),
                        mode: v.mode.as_str().to_owned(),
                        status: v.status.to_owned(),
                        supports: v.supports,
                        p50_latency_ms: v.p50_latency_ms,
                    })
                    .collect(),
            }
        }))
    }
}
