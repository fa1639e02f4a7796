//! Discovery: which vendors serve a capability, and how they are doing.

use super::{Domain, Error, ErrorCode, Project, Result};
use crate::vendors::{Mode, VendorKind, VendorRouter};

/// Every capability id, one per public operation.
pub const CAPABILITIES: [&str; 23] = [
    "auth.user.create",
    "auth.user.get",
    "auth.user.get_by_email",
    "auth.user.list",
    "auth.user.update",
    "auth.user.delete",
    "auth.session.create",
    "auth.session.verify",
    "auth.session.refresh",
    "auth.session.revoke",
    "auth.session.revoke_all_for_user",
    "auth.session.list_for_user",
    "auth.consent.grant",
    "auth.consent.revoke",
    "auth.consent.check",
    "auth.consent.list_for_user",
    "auth.consent.history",
    "auth.oauth.start",
    "auth.oauth.complete",
    "auth.oauth.providers",
    "auth.user.identities",
    "auth.user.export",
    "auth.audit",
];

/// One vendor's standing for a capability.
#[derive(Clone, Debug, PartialEq)]
pub struct VendorStanding {
    /// The vendor.
    pub vendor: VendorKind,
    /// Whose credentials: the operator's, or the calling project's own.
    pub mode: Mode,
    /// `live`, `degraded`, `down` or `not_configured`.
    pub status: &'static str,
    /// Whether the vendor can serve this capability.
    pub supports: bool,
    /// Recent median latency of its calls, when any were made.
    pub p50_latency_ms: Option<f64>,
}

/// The answer of discovery for one capability.
#[derive(Clone, Debug, PartialEq)]
pub struct CapabilityStatus {
    /// The capability asked about.
    pub capability: String,
    /// Every vendor with the operator's credentials, in priority order,
    /// then those the project brought its own credentials for.
    pub vendors: Vec<VendorStanding>,
}

impl Domain {
    /// The vendors behind one capability id, for the calling project.
    pub async fn discover(&self, project: &Project, capability: &str) -> Result<CapabilityStatus> {
        if !CAPABILITIES.contains(&capability) {
            return Err(Error::new(
                ErrorCode::NotFound,
                format!("unknown capability {capability:?}"),
            ));
        }
        let mut vendors: Vec<VendorStanding> = VendorKind::ALL
            .into_iter()
            .map(|vendor| {
                let (status, p50_latency_ms) = self.vendors.standing(vendor);
                VendorStanding {
                    vendor,
                    mode: Mode::Managed,
                    status,
                    // A configured adapter answers for its own credentials
                    // (a Clerk production key opens no sessions); every
                    // vendor serves every capability with the usual ones.
                    supports: self.vendors.supports(vendor, capability).unwrap_or(true),
                    p50_latency_ms,
                }
            })
            .collect();
        for adapter in self.byok_adapters(project).await? {
            let (status, p50_latency_ms) = VendorRouter::standing_of(adapter.as_ref());
            vendors.push(VendorStanding {
                vendor: adapter.kind(),
                mode: Mode::Byok,
                status,
                supports: adapter.supports(capability),
                p50_latency_ms,
            });
        }
        Ok(CapabilityStatus {
            capability: capability.to_owned(),
            vendors,
        })
    }
}
