//! GDPR/CCPA consent: an append-only ledger per user and category, with
//! the current state kept beside it.

use serde::{Deserialize, Serialize};

use super::{Domain, Error, EventKind, Project, Result, new_id_after};
use crate::store::entity::{consent_events, consent_states};

const MAX_SOURCE_LEN: usize = 256;

/// The current state of one category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentState {
    /// The category.
    pub category: String,
    /// Whether consent is given now.
    pub granted: bool,
    /// Where the standing grant came from.
    pub source: Option<String>,
    /// When the standing grant was given, Unix milliseconds.
    pub granted_at: Option<i64>,
}

impl From<consent_states::Model> for ConsentState {
    fn from(s: consent_states::Model) -> Self {
        ConsentState {
            category: s.category,
            granted: s.granted,
            source: s.source,
            granted_at: s.granted_at,
        }
    }
}

/// One ledger entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentEvent {
    /// The category.
    pub category: String,
    /// True for a grant, false for a revocation.
    pub granted: bool,
    /// Where it came from.
    pub source: Option<String>,
    /// When, Unix milliseconds.
    pub at: i64,
}

impl From<consent_events::Model> for ConsentEvent {
    fn from(e: consent_events::Model) -> Self {
        ConsentEvent {
            category: e.category,
            granted: e.granted,
            source: e.source,
            at: e.created_at,
        }
    }
}

/// Checks a category against `^[a-z0-9][a-z0-9_.:-]{0,63}$`.
pub fn check_category(category: &str) -> Result<()> {
    let bytes = category.as_bytes();
    let first_ok = bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = bytes[1.min(bytes.len())..]
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.:-".contains(b));
    if category.is_empty() {
        return Err(Error::invalid("category is required"));
    }
    if !first_ok || !rest_ok || bytes.len() > 64 {
        return Err(Error::invalid(format!(
            "category {category:?} must match ^[a-z0-9][a-z0-9_.:-]{{0,63}}$"
        )));
    }
    Ok(())
}

#[derive(Serialize)]
struct ConsentChange<'a> {
    user_id: &'a str,
    category: &'a str,
    granted: bool,
    source: Option<&'a str>,
}

impl Domain {
    /// Records a grant (or, with `granted: false`, a revocation).
    pub async fn record_consent(
        &self,
        project: &Project,
        user_id: &str,
        category: &str,
        granted: bool,
        source: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<()> {
        check_category(category)?;
        if let Some(s) = source {
            super::text::check_visible("source", s)?;
        }
        if let Some(s) = source
            && s.len() > MAX_SOURCE_LEN
        {
            return Err(Error::invalid(format!(
                "source must be at most {MAX_SOURCE_LEN} bytes"
            )));
        }
        self.user_row(project, user_id).await?;
        let change = ConsentChange {
            user_id,
            category,
            granted,
            source,
        };
        let operation = if granted {
            "consent.grant"
        } else {
            "consent.revoke"
        };
        self.idempotent(
            project,
            operation,
            idempotency_key,
            &change,
            move || async move {
                let kind = if granted {
                    EventKind::ConsentGranted
                } else {
                    EventKind::ConsentRevoked
                };
                let recorded = self
                    .store
                    .record_consent(&project.id, user_id, |last| {
                        let (after, at) = last.entry.unzip();
                        let entry = consent_events::Model {
                            id: new_id_after("cev", after.as_deref()),
                            project_id: project.id.clone(),
                            user_id: user_id.to_owned(),
                            category: category.to_owned(),
                            granted,
                            source: source.map(str::to_owned),
                            // Never before the entry it follows.
                            created_at: self.now().max(at.unwrap_or(i64::MIN)),
                        };
                        let mut announce = self.event(
                            project,
                            kind,
                            user_id,
                            serde_json::json!({"category": category, "source": source}),
                        );
                        announce.id = new_id_after("evt", last.event.as_deref());
                        announce.occurred_at = entry.created_at;
                        (entry, vec![announce])
                    })
                    .await?;
                if !recorded {
                    // Deleted since the check above.
                    return Err(Error::user_not_found(user_id));
                }
                Ok(())
            },
        )
        .await
    }

    /// The current state of one category; never granted reads as not granted.
    pub async fn check_consent(
        &self,
        project: &Project,
        user_id: &str,
        category: &str,
    ) -> Result<ConsentState> {
        check_category(category)?;
        self.user_row(project, user_id).await?;
        let state = self
            .store
            .consent_state(&project.id, user_id, category)
            .await?;
        Ok(match state {
            Some(s) => s.into(),
            None => ConsentState {
                category: category.to_owned(),
                granted: false,
                source: None,
                granted_at: None,
            },
        })
    }

    /// Every category the user has touched, with its current state.
    pub async fn list_consent(
        &self,
        project: &Project,
        user_id: &str,
    ) -> Result<Vec<ConsentState>> {
        self.user_row(project, user_id).await?;
        Ok(self
            .store
            .consent_states(&project.id, user_id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The whole ledger of a user, oldest first.
    pub async fn consent_history(
        &self,
        project: &Project,
        user_id: &str,
    ) -> Result<Vec<ConsentEvent>> {
        self.user_row(project, user_id).await?;
        Ok(self
            .store
            .consent_events(&project.id, user_id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

/// The current state of every category a ledger touches, by category,
/// beside the ledger itself: each is the state its last entry leaves.
pub(crate) fn consent_from_ledger(
    ledger: Vec<consent_events::Model>,
) -> (Vec<ConsentState>, Vec<ConsentEvent>) {
    let mut last = std::collections::BTreeMap::new();
    for entry in &ledger {
        last.insert(entry.category.as_str(), entry);
    }
    let states = last
        .into_values()
        .map(|entry| consent_states::Model::after(entry).into())
        .collect();
    (states, ledger.into_iter().map(Into::into).collect())
}

#[cfg(test)]
mod tests {
    use super::check_category;

    #[test]
    fn categories_follow_the_pattern() {
        for ok in ["marketing", "a", "0", "ads.email:eu-1_x", &"a".repeat(64)] {
            assert!(check_category(ok).is_ok(), "{ok:?} refused");
        }
        for bad in [
            "",
            "Marketing",
            "_x",
            "-x",
            "a b",
            "a/b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(check_category(bad).is_err(), "{bad:?} accepted");
        }
    }
}
