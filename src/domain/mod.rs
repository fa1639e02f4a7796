//! The rules of authmux: validation, tenancy, idempotency, the consent
//! ledger and the error model. Knows nothing of proto or HTTP.

mod consent;
mod discovery;
mod error;
mod idempotency;
mod ids;
mod projects;
mod users;

pub use consent::{ConsentEvent, ConsentState};
pub use discovery::{CAPABILITIES, CapabilityStatus, VendorStanding};
pub use error::{Error, ErrorCode, Result};
pub use ids::new_id;
pub use projects::{ApiKeyInfo, NewApiKey};
pub use users::{CreateUser, UpdateUser, User, UserPage};

use crate::crypto::MasterKey;
use crate::store::Store;
use crate::vendors::VendorRouter;

/// The project a caller's API key belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    /// `prj_…`
    pub id: String,
    /// The project's unique name.
    pub name: String,
}

/// The domain services, shared by every transport.
#[derive(Clone)]
pub struct Domain {
    store: Store,
    master: MasterKey,
    vendors: VendorRouter,
}

impl Domain {
    /// Wires the domain over a store, the master key and the vendors.
    pub fn new(store: Store, master: MasterKey, vendors: VendorRouter) -> Self {
        Domain {
            store,
            master,
            vendors,
        }
    }

    /// The store, for readiness checks.
    pub fn store(&self) -> &Store {
        &self.store
    }
}
