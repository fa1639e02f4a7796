//! What is stored about one user, read at one moment, for its export.

use super::entity::{consent_events, events, identities, sessions};
use super::events::EventFilter;
use super::{Store, StoreResult};

/// The events read per query while a user's are gathered.
const EVENTS_PAGE: u64 = 500;

/// Everything stored about a user, as it stood at one moment.
#[derive(Debug)]
pub struct UserRecords {
    /// Every session, oldest first.
    pub sessions: Vec<sessions::Model>,
    /// Linked identities, by provider and subject.
    pub identities: Vec<identities::Model>,
    /// The whole consent ledger, oldest first.
    pub consent_ledger: Vec<consent_events::Model>,
    /// Every event about the user, oldest first.
    pub events: Vec<events::Model>,
}

impl Store {
    /// A user's sessions, identities, consent ledger and events, all read
    /// in one snapshot: a change committed meanwhile (a session opened or
    /// revoked with its event, a consent entry with its event) is in every
    /// part or in none.
    pub async fn user_records(&self, project_id: &str, user_id: &str) -> StoreResult<UserRecords> {
        let txn = self.snapshot().await?;
        let sessions = super::sessions::user_sessions_in(&txn, project_id, user_id).await?;
        let identities = super::oauth::user_identities_in(&txn, project_id, user_id).await?;
        let consent_ledger = super::consent::consent_events_in(&txn, project_id, user_id).await?;
        let mut events = Vec::new();
        loop {
            let filter = EventFilter {
                user_id: Some(user_id),
                kind: None,
                before: events.last().map(|e: &events::Model| e.id.as_str()),
            };
            let page = super::events::events_in(&txn, project_id, &filter, EVENTS_PAGE).await?;
            let done = (page.len() as u64) < EVENTS_PAGE;
            events.extend(page);
            if done {
                break;
            }
        }
        events.reverse();
        txn.commit().await?;
        Ok(UserRecords {
            sessions,
            identities,
            consent_ledger,
            events,
        })
    }
}
