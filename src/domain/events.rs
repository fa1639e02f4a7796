//! Events: what changed, announced in the same transaction as the change
//! (the outbox), listed as the audit log and included in a user's export.
//!
//! An event's `data` names ids, field names and reasons only: no token,
//! password, secret or profile value (an email, a name, metadata). So the
//! log can be kept for its whole retention after a user is erased, and a
//! `user.deleted` event proves when the erasure happened without keeping
//! what was erased.

use serde_json::{Value, json};

use super::{Domain, Project, Result, new_id};
use crate::store::entity::{events, users};
use crate::store::events::EventFilter;

/// The kinds of event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A user was created.
    UserCreated,
    /// A user's profile changed (`data.fields` names what).
    UserUpdated,
    /// A user was erased.
    UserDeleted,
    /// A session began.
    SessionCreated,
    /// A session's refresh token was rotated.
    SessionRefreshed,
    /// A session ended (`data.reason`).
    SessionRevoked,
    /// Consent to a category was granted.
    ConsentGranted,
    /// Consent to a category was withdrawn.
    ConsentRevoked,
    /// TOTP was turned on.
    MfaEnrolled,
    /// TOTP was turned off.
    MfaRemoved,
    /// An outside identity (OAuth) was linked to a user.
    IdentityLinked,
    /// A user's identities at a provider were unlinked.
    IdentityUnlinked,
}

impl EventKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::UserCreated => "user.created",
            EventKind::UserUpdated => "user.updated",
            EventKind::UserDeleted => "user.deleted",
            EventKind::SessionCreated => "session.created",
            EventKind::SessionRefreshed => "session.refreshed",
            EventKind::SessionRevoked => "session.revoked",
            EventKind::ConsentGranted => "consent.granted",
            EventKind::ConsentRevoked => "consent.revoked",
            EventKind::MfaEnrolled => "mfa.enrolled",
            EventKind::MfaRemoved => "mfa.removed",
            EventKind::IdentityLinked => "identity.linked",
            EventKind::IdentityUnlinked => "identity.unlinked",
        }
    }
}

/// Why a session ended, as `session.revoked` states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokeReason {
    /// `session.revoke`.
    Revoke,
    /// `session.revoke_all_for_user`, or a password change ending the
    /// other sessions.
    RevokeAll,
    /// A rotated refresh token came back: the whole session is ended.
    ReuseDetected,
    /// The user was deleted.
    UserDeleted,
}

impl RevokeReason {
    fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Revoke => "revoke",
            RevokeReason::RevokeAll => "revoke_all",
            RevokeReason::ReuseDetected => "reuse_detected",
            RevokeReason::UserDeleted => "user_deleted",
        }
    }
}

/// One event as the audit log and the export show it.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    /// `evt_…`, time-ordered.
    pub id: String,
    /// e.g. `user.created`.
    pub kind: String,
    /// The project.
    pub project_id: String,
    /// When, Unix ms.
    pub occurred_at: i64,
    /// The user concerned.
    pub user_id: Option<String>,
    /// The API key that made the change.
    pub api_key_id: Option<String>,
    /// The caller's request id.
    pub request_id: Option<String>,
    /// What changed.
    pub data: Value,
}

impl From<events::Model> for AuditEvent {
    fn from(row: events::Model) -> Self {
        AuditEvent {
            data: serde_json::from_str(&row.data).unwrap_or(Value::Null),
            id: row.id,
            kind: row.kind,
            project_id: row.project_id,
            occurred_at: row.occurred_at,
            user_id: row.user_id,
            api_key_id: row.api_key_id,
            request_id: row.request_id,
        }
    }
}

/// A page of the audit log.
#[derive(Clone, Debug)]
pub struct AuditPage {
    /// Newest first.
    pub items: Vec<AuditEvent>,
    /// The cursor of the next page, when there may be one.
    pub next_cursor: Option<String>,
}

/// How long events are kept by default: a year.
pub const DEFAULT_RETENTION_MS: i64 = 365 * 24 * 3600 * 1000;

impl Domain {
    /// An event about `user_id` of `project`, made by the caller behind
    /// `project` (its API key and request id), stamped now.
    pub(crate) fn event(
        &self,
        project: &Project,
        kind: EventKind,
        user_id: &str,
        data: Value,
    ) -> events::Model {
        let mut data = data;
        if let Some(obj) = data.as_object_mut() {
            obj.insert("user_id".into(), json!(user_id));
        }
        events::Model {
            id: new_id("evt"),
            project_id: project.id.clone(),
            kind: kind.as_str().to_owned(),
            user_id: Some(user_id.to_owned()),
            api_key_id: project.key_id.clone(),
            request_id: project.request_id.clone(),
            occurred_at: self.now(),
            data: data.to_string(),
        }
    }

    /// `session.revoked` for each of `session_ids`.
    pub(crate) fn revoked_events(
        &self,
        project: &Project,
        user_id: &str,
        session_ids: &[String],
        reason: RevokeReason,
    ) -> Vec<events::Model> {
        session_ids
            .iter()
            .map(|sid| {
                self.event(
                    project,
                    EventKind::SessionRevoked,
                    user_id,
                    json!({"session_id": sid, "reason": reason.as_str()}),
                )
            })
            .collect()
    }

    /// The events of a change to a user's row: `user.updated` naming the
    /// fields that changed (with `also`, changes the row does not show,
    /// such as a new password), and `mfa.enrolled` / `mfa.removed` when
    /// the factor came or went.
    pub(crate) fn user_changes(
        &self,
        project: &Project,
        before: &users::Model,
        after: &users::Model,
        also: &[&str],
    ) -> Vec<events::Model> {
        let mut fields: Vec<&str> = [
            (
                "email_verified",
                before.email_verified != after.email_verified,
            ),
            ("metadata", before.metadata != after.metadata),
            ("phone_number", before.phone_number != after.phone_number),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect();
        fields.extend_from_slice(also);
        let mut out = Vec::new();
        if !fields.is_empty() {
            out.push(self.event(
                project,
                EventKind::UserUpdated,
                &after.id,
                json!({ "fields": fields }),
            ));
        }
        match (before.mfa_enabled, after.mfa_enabled) {
            (false, true) => out.push(self.event(
                project,
                EventKind::MfaEnrolled,
                &after.id,
                json!({"factor": "totp"}),
            )),
            (true, false) => out.push(self.event(
                project,
                EventKind::MfaRemoved,
                &after.id,
                json!({"factor": "totp"}),
            )),
            _ => {}
        }
        out
    }

    /// The events of a user's erasure: `session.revoked` (reason
    /// `user_deleted`) for each session it ended, then `user.deleted`,
    /// which says how (`by`) and keeps nothing about the user but its id.
    pub(crate) fn deleted_events(
        &self,
        project: &Project,
        user_id: &str,
        revoked: &[String],
        by: &str,
    ) -> Vec<events::Model> {
        let mut out = self.revoked_events(project, user_id, revoked, RevokeReason::UserDeleted);
        out.push(self.event(
            project,
            EventKind::UserDeleted,
            user_id,
            json!({ "by": by }),
        ));
        out
    }

    /// A page of the audit log, newest first.
    pub async fn audit(
        &self,
        project: &Project,
        user_id: Option<&str>,
        kind: Option<&str>,
        cursor: Option<&str>,
        limit: Option<i32>,
    ) -> Result<AuditPage> {
        let fetch = super::paging::fetch_for(limit)?;
        let filter = EventFilter {
            user_id,
            kind,
            before: cursor,
        };
        let rows = self.store.events(&project.id, &filter, fetch).await?;
        let (rows, next_cursor) = super::paging::page(rows, fetch, |r| &r.id);
        Ok(AuditPage {
            items: rows.into_iter().map(AuditEvent::from).collect(),
            next_cursor,
        })
    }
}
