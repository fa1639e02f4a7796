//! Users: validation and the create/read/list/update/delete rules, with
//! the vendor of record pinned per user.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Domain, Error, ErrorCode, EventKind, Project, Result, new_id};
use crate::store::StoreError;
use crate::store::entity::{pins, users};
use crate::store::users::Deletion;
use crate::vendors::{IdentityVendor, MfaEnrollment, Mode, NewIdentity, VendorError, VendorKind};

/// How long an MFA enrolment holds its claim at most (a crashed one
/// frees it then).
const MFA_ENROLLMENT_CLAIM_MS: i64 = 60_000;

/// How long a user's deletion reservation holds: longer than a vendor
/// delete can take with its retries (3 attempts of at most 10 s, with
/// backoff and a `Retry-After` of at most 5 s between them). A deleter
/// that died is taken over after it.
const DELETION_LEASE_MS: i64 = 60_000;

/// How long an update's hold of a vendor-held user lasts unless renewed:
/// a hold whose process died lapses then.
const UPDATE_LEASE_MS: i64 = 60_000;

/// How often a running update renews its hold, by the domain's clock: an
/// update making several vendor calls, each of up to three attempts of
/// 10 s, can take longer than a lease, and its hold must not lapse under
/// it while it still changes the user at the vendor.
const UPDATE_RENEW_MS: i64 = UPDATE_LEASE_MS / 3;

/// How often the renewal looks at the clock.
const UPDATE_RENEW_TICK: Duration = Duration::from_secs(1);

/// How long a hold is renewed at most: an update stuck past this lets its
/// hold lapse.
const UPDATE_HOLD_MAX_MS: i64 = 10 * 60_000;

/// A vendor-held user held for one update (see
/// [`Domain::hold_for_update`]): the store slot, its release should the
/// request be dropped, and the task renewing it.
pub(crate) struct Hold {
    id: String,
    abandon: super::abandon::Abandon,
    renewal: tokio::task::JoinHandle<()>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

/// The kind of the store slot an update holds.
const UPDATE_SLOT: &str = "user_update";

/// How long an update waits for the one holding the user before it is
/// `SERVICE_BUSY`.
const UPDATE_WAIT: Duration = Duration::from_secs(15);

/// A change to a stored row refused by the domain's rules or by the store.
enum StoreOr {
    Domain(Error),
    Store(StoreError),
    /// Another update changed the metadata since it was read.
    Overtaken,
}

/// Tries of a metadata merge that other updates of the same vendor user
/// keep overtaking (each try reads, merges, sends to the vendor and
/// stores); every try of a burst stores one merge, so a burst of up to
/// this many merges for one user all land.
const METADATA_MERGE_TRIES: u32 = 16;

/// `stored` with `patch` merged in: a `null` removes its key.
fn merged_metadata(
    mut stored: Map<String, Value>,
    patch: &Map<String, Value>,
) -> Map<String, Value> {
    for (k, v) in patch {
        if v.is_null() {
            stored.remove(k);
        } else {
            stored.insert(k.clone(), v.clone());
        }
    }
    stored
}

impl From<Error> for StoreOr {
    fn from(e: Error) -> Self {
        StoreOr::Domain(e)
    }
}

impl From<StoreError> for StoreOr {
    fn from(e: StoreError) -> Self {
        StoreOr::Store(e)
    }
}

/// `phone_number` is another user's.
fn phone_taken(phone: &str) -> Error {
    Error::new(
        ErrorCode::AuthPhoneNumberTaken,
        format!("phone_number {phone} belongs to another user in this project"),
    )
}

/// Largest metadata object, serialized.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// A user as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// `usr_…`
    pub id: String,
    /// The email as given (trimmed).
    pub email: String,
    /// Whether the email is verified.
    pub email_verified: bool,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
    /// Whether a TOTP factor is enrolled.
    pub mfa_enabled: bool,
    /// The vendor of record.
    pub vendor: String,
    /// E.164, when set.
    pub phone_number: Option<String>,
    /// The enrollment made by this very call, shown once.
    pub mfa_enrollment: Option<MfaEnrollment>,
}

/// Input of `user.create`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CreateUser {
    /// Required.
    pub email: String,
    /// 8 to 128 characters when present.
    pub password: Option<String>,
    /// A JSON object of at most 16 KiB.
    pub metadata: Option<Map<String, Value>>,
    /// A vendor name; the best available when absent.
    pub vendor: Option<String>,
    /// `managed` (default) or `byok`.
    pub mode: Option<String>,
}

/// Input of `user.update`; absent fields stay as they are.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UpdateUser {
    /// Shallow merge; a null value deletes the key.
    pub metadata: Option<Map<String, Value>>,
    /// New verification state.
    pub email_verified: Option<bool>,
    /// `true` enrolls TOTP, `false` removes it.
    pub mfa_enabled: Option<bool>,
    /// E.164; `""` removes it.
    pub phone_number: Option<String>,
    /// A new password (same rules as at creation).
    pub password: Option<String>,
    /// With a new password: keep the user's sessions (default: revoke).
    pub keep_sessions: bool,
}

/// One page of `user.list`.
#[derive(Clone, Debug)]
pub struct UserPage {
    /// Newest first.
    pub items: Vec<User>,
    /// Opaque cursor of the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// Trims and checks an email address; the message names the field.
pub fn normalize_email(raw: &str) -> Result<String> {
    let email = raw.trim();
    if email.is_empty() {
        return Err(Error::invalid("email is required"));
    }
    super::text::check_visible("email", email)?;
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && local.len() <= 64
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains("..")
            }
            None => false,
        };
    if !valid {
        return Err(Error::invalid(format!(
            "email {email:?} is not a valid email address"
        )));
    }
    Ok(email.to_owned())
}

/// An E.164 number: `+`, then 2 to 15 digits, the first not 0.
fn check_phone(phone: &str) -> Result<()> {
    let digits = phone.strip_prefix('+').unwrap_or("");
    let ok = (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if !ok {
        return Err(Error::invalid(format!(
            "phone_number {phone:?} is not an E.164 number like \"+14155550100\""
        )));
    }
    Ok(())
}

fn check_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if !(8..=128).contains(&n) {
        return Err(Error::invalid("password must be 8 to 128 characters"));
    }
    Ok(())
}

/// The deepest nesting of objects and arrays inside metadata.
pub const MAX_METADATA_DEPTH: usize = 16;
/// 2^53: integers at or beyond it can't be kept exactly as JSON numbers
/// (nor as the doubles of a protobuf `Struct`).
pub const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

/// Checks one metadata value: nesting and numbers that would not come back
/// as they were sent. `path` names it in the message.
fn check_metadata_value(path: &str, value: &Value, depth: usize) -> Result<()> {
    if depth > MAX_METADATA_DEPTH {
        return Err(Error::invalid(format!(
            "metadata is nested deeper than {MAX_METADATA_DEPTH} levels at {path}"
        )));
    }
    match value {
        Value::Number(n) => {
            let inexact = match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => i.unsigned_abs() >= 1 << 53,
                (_, Some(u), _) => u >= 1 << 53,
                (_, _, Some(f)) => f.fract() == 0.0 && f.abs() >= EXACT_INTEGERS,
                _ => true,
            };
            if inexact {
                return Err(Error::invalid(format!(
                    "metadata number at {path} is an integer beyond ±2^53, which can't be kept exactly; send it as a string"
                )));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_metadata_value(&format!("{path}[{i}]"), item, depth + 1)?;
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                check_metadata_value(&format!("{path}.{k}"), v, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_metadata_size(metadata: &Map<String, Value>) -> Result<String> {
    for (k, v) in metadata {
        check_metadata_value(&format!("metadata.{k}"), v, 1)?;
    }
    let text = serde_json::to_string(metadata).map_err(Error::internal)?;
    if text.len() > MAX_METADATA_BYTES {
        return Err(Error::invalid(format!(
            "metadata is {} bytes; the limit is {MAX_METADATA_BYTES}",
            text.len()
        )));
    }
    Ok(text)
}

fn to_user(row: users::Model) -> Result<User> {
    let metadata = match serde_json::from_str(&row.metadata) {
        Ok(Value::Object(map)) => map,
        _ => {
            return Err(Error::internal(format!(
                "user {} has corrupt metadata",
                row.id
            )));
        }
    };
    Ok(User {
        id: row.id,
        email: row.email,
        email_verified: row.email_verified,
        created_at: row.created_at,
        metadata,
        mfa_enabled: row.mfa_enabled,
        vendor: row.vendor,
        phone_number: row.phone_number,
        mfa_enrollment: None,
    })
}

impl Domain {
    /// Creates a user at the chosen vendor and pins it there.
    pub async fn create_user(
        &self,
        project: &Project,
        input: CreateUser,
        idempotency_key: Option<&str>,
    ) -> Result<User> {
        let email = normalize_email(&input.email)?;
        if let Some(p) = &input.password {
            check_password(p)?;
        }
        let metadata = input.metadata.clone().unwrap_or_default();
        let metadata_text = check_metadata_size(&metadata)?;
        let mode = match input.mode.as_deref() {
            None => Mode::Managed,
            Some(m) => Mode::parse(m).ok_or_else(|| {
                Error::invalid(format!("mode {m:?} is not one of \"managed\", \"byok\""))
            })?,
        };
        // A named vendor is the only one tried; otherwise the configured
        // vendors in priority order, failing over when one is unavailable.
        let candidates = match input.vendor.as_deref() {
            None if mode == Mode::Byok => {
                return Err(Error::new(
                    ErrorCode::AuthVendorRequired,
                    "mode \"byok\" needs a vendor: name one in the vendor field",
                ));
            }
            None => self.vendors.candidates(),
            Some(v) => {
                let kind = VendorKind::parse(v).ok_or_else(|| {
                    Error::invalid(format!(
                        "vendor {v:?} is not one of {}",
                        VendorKind::names()
                    ))
                })?;
                vec![self.vendor_for(project, kind, mode).await?]
            }
        };
        if candidates.is_empty() {
            return Err(Error::new(
                ErrorCode::VendorUnavailable,
                "no configured vendor is available",
            )
            .retry_after(1));
        }

        let (input, email, metadata, metadata_text, candidates) =
            (&input, &email, &metadata, &metadata_text, &candidates);
        self.idempotent_about(
            project,
            "user.create",
            idempotency_key,
            input,
            |user: &User| Some(user.id.clone()),
            move || async move {
                let email_lower = super::text::email_key(email)?;
                let exists = || {
                    Error::new(
                        ErrorCode::AuthUserExists,
                        format!("a user with email {email} already exists in this project"),
                    )
                };
                if self
                    .store
                    .user_by_email(&project.id, &email_lower)
                    .await?
                    .is_some()
                {
                    return Err(exists());
                }
                let user_id = new_id("usr");
                let identity = NewIdentity {
                    user_id: &user_id,
                    email,
                    password: input.password.as_deref(),
                    metadata,
                };
                let (vendor, vendor_user_id) = self
                    .create_with_failover(project, candidates, identity)
                    .await?;
                let now = self.now();
                let row = users::Model {
                    id: user_id.clone(),
                    project_id: project.id.clone(),
                    email: email.clone(),
                    email_lower,
                    email_verified: false,
                    metadata: metadata_text.clone(),
                    mfa_enabled: false,
                    vendor: vendor.kind().as_str().to_owned(),
                    created_at: now,
                    updated_at: now,
                    phone_number: None,
                    password_set: input.password.is_some(),
                    deleting_since: None,
                    password_version: 0,
                };
                let pin = pins::Model {
                    project_id: project.id.clone(),
                    resource_id: user_id.clone(),
                    kind: "user".to_owned(),
                    vendor: vendor.kind().as_str().to_owned(),
                    mode: mode.as_str().to_owned(),
                    vendor_resource_id: vendor_user_id.clone(),
                    created_at: now,
                };
                let announce = self.event(
                    project,
                    EventKind::UserCreated,
                    &user_id,
                    serde_json::json!({"vendor": row.vendor, "mode": pin.mode}),
                );
                if let Err(err) = self
                    .store
                    .insert_user(row.clone(), pin, vec![announce])
                    .await
                {
                    // Undo the vendor side; the index refused the row.
                    if let Err(undo) = vendor.delete_user(&project.id, &vendor_user_id).await {
                        tracing::warn!(user_id, error = %undo, "could not undo a vendor create");
                    }
                    return Err(match err {
                        crate::store::StoreError::Duplicate(_) => exists(),
                        other => other.into(),
                    });
                }
                to_user(row)
            },
        )
        .await
    }

    /// Creates the identity at the first candidate that takes it. A vendor
    /// that is unavailable is left for the next one only when the create
    /// certainly had no effect there, or when a lookup by email shows it
    /// made no user; a user it did make (a create that timed out after
    /// taking effect) is adopted instead, so no user is made twice.
    async fn create_with_failover(
        &self,
        project: &Project,
        candidates: &[std::sync::Arc<dyn crate::vendors::IdentityVendor>],
        identity: NewIdentity<'_>,
    ) -> Result<(std::sync::Arc<dyn crate::vendors::IdentityVendor>, String)> {
        let mut last = None;
        for vendor in candidates {
            let attempt = NewIdentity {
                user_id: identity.user_id,
                email: identity.email,
                password: identity.password,
                metadata: identity.metadata,
            };
            match vendor.create_user(&project.id, attempt).await {
                Ok(id) => return Ok((vendor.clone(), id)),
                Err(e @ VendorError::Unavailable { sent, .. }) => {
                    if sent {
                        match vendor.find_user_by_email(&project.id, identity.email).await {
                            // Only the user this very attempt created (its
                            // external id is our new user id) is adopted.
                            Ok(Some(found))
                                if found.external_id.as_deref() == Some(identity.user_id) =>
                            {
                                tracing::info!(vendor = %vendor.kind(), "adopting a user created by a create that failed");
                                return Ok((vendor.clone(), found.id));
                            }
                            // Someone else's user (another project sharing
                            // the vendor, or one made outside authmux): not
                            // ours to adopt, and the email is taken there.
                            Ok(Some(_)) => return Err(e.into()),
                            Ok(None) => {}
                            // Can't tell whether the user exists there: stop
                            // rather than risk a second user elsewhere.
                            Err(_) => return Err(e.into()),
                        }
                    }
                    tracing::warn!(vendor = %vendor.kind(), error = %e, "vendor unavailable; trying the next");
                    last = Some(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.map_or_else(
            || Error::new(ErrorCode::VendorUnavailable, "no vendor available"),
            Error::from,
        ))
    }

    /// One user of the project, refreshed from its vendor when the vendor
    /// is the record of truth.
    pub async fn get_user(&self, project: &Project, user_id: &str) -> Result<User> {
        let row = self.user_row(project, user_id).await?;
        to_user(self.refresh_from_vendor(project, row).await?)
    }

    /// Brings the index row in line with what the pinned vendor reports,
    /// unless the row changed while the vendor was asked: the vendor's
    /// answer may then be a state an update had half made and has since
    /// given back (see [`Domain::resync_from_vendor`]).
    async fn refresh_from_vendor(
        &self,
        project: &Project,
        row: users::Model,
    ) -> Result<users::Model> {
        self.copy_from_vendor(project, row, false).await
    }

    /// After an update gave the vendor back what it had set there: the
    /// index takes the vendor's state again (a read may have copied the
    /// half-made one meanwhile) and the row is marked changed, so that a
    /// read which asked the vendor before the give-back does not store
    /// its answer. Failures are logged.
    async fn resync_from_vendor(&self, project: &Project, user_id: &str) {
        let resynced = async {
            let row = self.user_row(project, user_id).await?;
            self.copy_from_vendor(project, row, true).await
        };
        if let Err(e) = resynced.await
            && e.code != ErrorCode::AuthUserNotFound
        {
            tracing::warn!(user_id, error = %e, "could not bring the user in line with its vendor");
        }
    }

    /// What [`Domain::refresh_from_vendor`] and
    /// [`Domain::resync_from_vendor`] share: with `resync`, the row is
    /// written (its `updated_at` moved on) whatever changed meanwhile.
    async fn copy_from_vendor(
        &self,
        project: &Project,
        row: users::Model,
        resync: bool,
    ) -> Result<users::Model> {
        if row.vendor == VendorKind::Native.as_str() {
            return Ok(row);
        }
        let pin = self.user_pin(project, &row.id).await?;
        let vendor = self.pinned_vendor(project, &pin).await?;
        let seen = match vendor
            .fetch_user(&project.id, &pin.vendor_resource_id)
            .await
        {
            Ok(Some(seen)) => seen,
            Ok(None) => return Ok(row),
            Err(VendorError::NotFound(_)) => {
                self.forget_vanished_user(project, &row.id).await?;
                return Err(Error::user_not_found(&row.id));
            }
            Err(e) => return Err(e.into()),
        };
        if !resync
            && (seen.email_verified, seen.mfa_enabled) == (row.email_verified, row.mfa_enabled)
        {
            return Ok(row);
        }
        let now = self.now();
        // While an update (or a sign-in that writes to the user) holds the
        // user, the vendor may show a state it has half made: it stores
        // its own outcome, or gives back and re-syncs, when it ends.
        if !resync
            && self
                .store
                .slot_held(&project.id, &row.id, UPDATE_SLOT, now - UPDATE_LEASE_MS)
                .await?
        {
            return Ok(row);
        }
        let changed = self
            .store
            .modify_user(
                &project.id,
                &row.id,
                |r| {
                    if !resync && r.updated_at != row.updated_at {
                        return Err(StoreOr::Overtaken);
                    }
                    r.email_verified = seen.email_verified;
                    r.mfa_enabled = seen.mfa_enabled;
                    r.updated_at = now.max(r.updated_at + 1);
                    Ok(())
                },
                |before, after| self.user_changes(project, before, after, &[]),
            )
            .await;
        match changed {
            Ok(changed) => changed
                .map(|(row, ())| row)
                .ok_or_else(|| Error::user_not_found(&row.id)),
            // Changed meanwhile: what is stored now is answered, and the
            // next read compares it with the vendor again.
            Err(StoreOr::Overtaken) => self.user_row(project, &row.id).await,
            Err(StoreOr::Domain(e)) => Err(e),
            Err(StoreOr::Store(e)) => Err(e.into()),
        }
    }

    /// One user by email, case-insensitively.
    pub async fn get_user_by_email(&self, project: &Project, email: &str) -> Result<User> {
        let email = normalize_email(email)?;
        let row = self
            .store
            .user_by_email(&project.id, &super::text::email_key(&email)?)
            .await?
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::AuthUserNotFound,
                    format!("no user with email {email} in this project"),
                )
            })?;
        to_user(self.refresh_from_vendor(project, row).await?)
    }

    /// A page of users, newest first.
    pub async fn list_users(
        &self,
        project: &Project,
        cursor: Option<&str>,
        limit: Option<i32>,
    ) -> Result<UserPage> {
        let fetch = super::paging::fetch_for(limit)?;
        let before = match cursor {
            None | Some("") => None,
            // The cursor is the last id of the previous page (its shape is
            // checked by the contract's rules): any such id is a position
            // in the keyset order.
            Some(c) => Some(c.to_owned()),
        };
        let rows = self
            .store
            .list_users(&project.id, before.as_deref(), fetch)
            .await?;
        let (rows, next_cursor) = super::paging::page(rows, fetch, |r| &r.id);
        let items = rows.into_iter().map(to_user).collect::<Result<_>>()?;
        Ok(UserPage { items, next_cursor })
    }

    /// Changes metadata, email verification, MFA, phone or password.
    /// Concurrent updates apply one after the other (every metadata key
    /// kept): on the stored row for the built-in provider, and whole, one
    /// holding the user at a time, for a vendor's users. Of concurrent MFA
    /// enrolments exactly one makes a secret.
    pub async fn update_user(
        &self,
        project: &Project,
        user_id: &str,
        input: UpdateUser,
        idempotency_key: Option<&str>,
    ) -> Result<User> {
        self.user_row(project, user_id).await?;
        if let Some(patch) = &input.metadata {
            check_metadata_size(patch)?;
        }
        if let Some(phone) = input.phone_number.as_deref().filter(|p| !p.is_empty()) {
            check_phone(phone)?;
        }
        if let Some(password) = &input.password {
            check_password(password)?;
        }
        let input = &input;
        let request = (user_id, input);
        self.idempotent_about(
            project,
            "user.update",
            idempotency_key,
            &request,
            |user: &User| Some(user.id.clone()),
            move || async move {
                let pin = self.user_pin(project, user_id).await?;
                let vendor = self.pinned_vendor(project, &pin).await?;
                let hold = self
                    .hold_for_update(project, user_id, vendor.kind())
                    .await?;
                let outcome = self
                    .apply_update(project, user_id, input, vendor.as_ref(), &pin)
                    .await;
                self.release_hold(hold).await;
                outcome
            },
        )
        .await
    }

    /// Holds a vendor-held user for one update at a time, waiting (up to
    /// [`UPDATE_WAIT`]) for the update before it, on any replica: the hold
    /// is a reserved slot in the store. One at a time, an update that fails
    /// gives the vendor back exactly what it set there, never a field
    /// another update has set and stored meanwhile (the same update sent
    /// twice at once, the second copy refused by the vendor's rate limit,
    /// would otherwise unverify the email the first copy verified). The
    /// built-in provider changes everything in one transaction and is not
    /// held. A request dropped while holding gives the hold up. The hold
    /// is renewed while it is held (every [`UPDATE_RENEW_MS`], for at most
    /// [`UPDATE_HOLD_MAX_MS`]), so that only a hold whose process died
    /// lapses.
    pub(crate) async fn hold_for_update(
        &self,
        project: &Project,
        user_id: &str,
        vendor: VendorKind,
    ) -> Result<Option<Hold>> {
        if vendor == VendorKind::Native {
            return Ok(None);
        }
        let mut waited = Duration::ZERO;
        loop {
            match self
                .reserve(project, user_id, UPDATE_SLOT, UPDATE_LEASE_MS, 1)
                .await?
            {
                Ok(id) => {
                    let abandon = {
                        let (store, id) = (self.store.clone(), id.clone());
                        super::abandon::Abandon::new(async move {
                            if let Err(e) = store.release_attempt(&id).await {
                                tracing::warn!(error = %e, "could not release an abandoned user update");
                            }
                        })
                    };
                    let renewal = {
                        let (store, clock, id) =
                            (self.store.clone(), self.clock.clone(), id.clone());
                        tokio::spawn(async move {
                            let held_at = clock.now_millis();
                            let mut renewed = held_at;
                            loop {
                                tokio::time::sleep(UPDATE_RENEW_TICK).await;
                                let now = clock.now_millis();
                                if now - held_at > UPDATE_HOLD_MAX_MS {
                                    return;
                                }
                                if now - renewed < UPDATE_RENEW_MS {
                                    continue;
                                }
                                match store.renew_attempt(&id, now).await {
                                    Ok(()) => renewed = now,
                                    Err(e) => {
                                        tracing::warn!(error = %e, "could not renew a user update's hold");
                                    }
                                }
                            }
                        })
                    };
                    return Ok(Some(Hold {
                        id,
                        abandon,
                        renewal,
                    }));
                }
                Err(frees_in) if waited >= UPDATE_WAIT => {
                    return Err(Error::new(
                        ErrorCode::ServiceBusy,
                        format!(
                            "another update of user {user_id} has held it for over {} s; retry",
                            UPDATE_WAIT.as_secs()
                        ),
                    )
                    .retry_after(frees_in));
                }
                Err(_) => {
                    let pause = Duration::from_millis(rand::Rng::gen_range(
                        &mut rand::thread_rng(),
                        5..=25,
                    ));
                    tokio::time::sleep(pause).await;
                    waited += pause;
                }
            }
        }
    }

    /// Gives up a hold of [`Domain::hold_for_update`]; a failure is logged
    /// (the hold then lapses after [`UPDATE_LEASE_MS`]).
    pub(crate) async fn release_hold(&self, hold: Option<Hold>) {
        let Some(mut hold) = hold else {
            return;
        };
        hold.renewal.abort();
        if let Err(e) = self.store.release_attempt(&hold.id).await {
            tracing::warn!(error = %e, "could not release a user update");
        }
        hold.abandon.disarm();
    }

    /// The changes of one update, with the user held for it when a vendor
    /// holds the user (see [`Domain::hold_for_update`]).
    async fn apply_update(
        &self,
        project: &Project,
        user_id: &str,
        input: &UpdateUser,
        vendor: &dyn IdentityVendor,
        pin: &pins::Model,
    ) -> Result<User> {
        // Read under the hold: what this update sends and may give back
        // is measured against the user as the update before it left it.
        let before = self.user_row(project, user_id).await?;
        let phone = input
            .phone_number
            .as_deref()
            .map(|p| (!p.is_empty()).then_some(p));
        let new_phone = phone
            .flatten()
            .filter(|p| Some(*p) != before.phone_number.as_deref());
        // A number another user holds is refused before any vendor
        // is asked (the user itself may hold it already: the same
        // request sent twice); two users taking one at once are
        // kept apart by the index's unique (project, phone) key below.
        if let Some(phone) = new_phone
            && self
                .store
                .user_by_phone(&project.id, phone)
                .await?
                .is_some_and(|holder| holder.id != user_id)
        {
            return Err(phone_taken(phone));
        }
        // Vendor-side changes that are the same whenever repeated go
        // first, so a vendor refusal leaves the index untouched. The
        // password leads them: it is the one a vendor's own policy
        // most often refuses (a breached or weak password), and a
        // refusal then leaves the vendor's record untouched too.
        if let Some(password) = &input.password {
            vendor
                .set_password(
                    &project.id,
                    &pin.vendor_resource_id,
                    &before.email,
                    password,
                )
                .await?;
        }
        // Once the vendor has the new password, the update's other
        // steps may still fail; the password's consequences hold
        // all the same (below).
        // What the vendor took of this update, and whether the index
        // stored it: an update that fails before it is stored gives
        // the vendor back what it can.
        let sent_verified = AtomicBool::new(false);
        let sent_phone = AtomicBool::new(false);
        let sent_metadata = AtomicBool::new(false);
        let stored = AtomicBool::new(false);
        // The other fields follow, those a vendor can take back first:
        // the metadata (always), the phone number and the email's
        // verification (not at Supabase, which can neither remove a phone
        // nor unconfirm an email), and a removed factor last (nowhere).
        // A refusal after them then costs the fewest give-backs that
        // can't be made; a taken phone number, the most common refusal,
        // leaves the verification unsent.
        let others = async {
            if let Some(phone) = phone
                && phone != before.phone_number.as_deref()
            {
                vendor
                    .set_phone(&project.id, &pin.vendor_resource_id, phone)
                    .await?;
                sent_phone.store(true, Ordering::Relaxed);
            }
            if let Some(verified) = input.email_verified
                && verified != before.email_verified
            {
                vendor
                    .set_email_verified(&project.id, &pin.vendor_resource_id, verified)
                    .await?;
                sent_verified.store(true, Ordering::Relaxed);
            }
            if input.mfa_enabled == Some(false) && before.mfa_enabled {
                vendor
                    .disable_mfa(&project.id, &pin.vendor_resource_id)
                    .await?;
            }
            Ok::<_, Error>(())
        };
        let mut others = Some(others);
        let rest = async {
            // Metadata goes to the vendor before the index too, so that a
            // vendor failure leaves the index untouched: merged into the
            // stored metadata as read here, and stored only if no other
            // update changed it meanwhile (the hold keeps others out, but
            // lapses under an update stuck past its renewals). Otherwise it
            // is read, merged and sent again, so the vendor's copy never
            // misses a merge the index has.
            let mut tries = 0;
            let saved = loop {
                let merge = match &input.metadata {
                    // The built-in provider keeps no copy of its own.
                    Some(_) if vendor.kind() == VendorKind::Native => None,
                    Some(patch) => {
                        // The first try merges into the row read under the
                        // hold; a try after being overtaken reads it again.
                        let seen = if tries == 0 {
                            before.clone()
                        } else {
                            self.user_row(project, user_id).await?
                        };
                        let merged = merged_metadata(to_user(seen.clone())?.metadata, patch);
                        vendor.check_metadata(&merged)?;
                        let stored = check_metadata_size(&merged)?;
                        vendor
                            .set_metadata(&project.id, &pin.vendor_resource_id, &merged)
                            .await?;
                        sent_metadata.store(true, Ordering::Relaxed);
                        Some((seen.metadata, stored))
                    }
                    None => None,
                };
                if let Some(others) = others.take() {
                    others.await?;
                }
                let now = self.now();
                let saved = self
                    .store
                    .modify_user(
                        &project.id,
                        user_id,
                        |row| -> Result<(), StoreOr> {
                            if let Some((seen, stored)) = &merge {
                                if row.metadata != *seen {
                                    return Err(StoreOr::Overtaken);
                                }
                                row.metadata = stored.clone();
                            } else if let Some(patch) = &input.metadata {
                                let stored = to_user(row.clone())?.metadata;
                                let merged = merged_metadata(stored, patch);
                                vendor.check_metadata(&merged).map_err(Error::from)?;
                                row.metadata = check_metadata_size(&merged)?;
                            }
                            if let Some(verified) = input.email_verified {
                                row.email_verified = verified;
                            }
                            if input.password.is_some() {
                                row.password_set = true;
                                // Sign-ins checked against the old one
                                // and not yet stored are refused.
                                row.password_version += 1;
                            }
                            if let Some(phone) = phone {
                                row.phone_number = phone.map(str::to_owned);
                            }
                            // Turned on only once a secret is in hand (below).
                            if input.mfa_enabled == Some(false) {
                                row.mfa_enabled = false;
                            }
                            row.updated_at = now;
                            Ok(())
                        },
                        |before, after| {
                            let also: &[&str] = if input.password.is_some() {
                                &["password"]
                            } else {
                                &[]
                            };
                            self.user_changes(project, before, after, also)
                        },
                    )
                    .await;
                match saved {
                    Err(StoreOr::Overtaken) if tries + 1 < METADATA_MERGE_TRIES => {
                        tries += 1;
                    }
                    saved => break saved,
                }
            };
            let (saved, ()) = match saved {
                Ok(saved) => saved.ok_or_else(|| Error::user_not_found(user_id))?,
                Err(StoreOr::Domain(e)) => return Err(e),
                Err(StoreOr::Overtaken) => {
                    return Err(Error::new(
                        ErrorCode::ServiceBusy,
                        format!(
                            "other updates of user {user_id}'s metadata overtook this one \
                         {METADATA_MERGE_TRIES} times; retry"
                        ),
                    )
                    .retry_after(1));
                }
                // The one unique key an update can break: another user
                // took the number since the check above. The vendor
                // gets the user's number back.
                Err(StoreOr::Store(StoreError::Duplicate(detail))) => {
                    let Some(phone) = new_phone else {
                        return Err(StoreError::Duplicate(detail).into());
                    };
                    return Err(phone_taken(phone));
                }
                Err(StoreOr::Store(e)) => return Err(e.into()),
            };
            stored.store(true, Ordering::Relaxed);
            let mut user = to_user(saved)?;
            if input.password.is_some() && !input.keep_sessions {
                // A new password ends every session the old one opened.
                self.revoke_all_sessions(project, user_id, None, None)
                    .await?;
            }
            if input.mfa_enabled == Some(true) && !user.mfa_enabled {
                if let Some(enrolled) = self.enroll_mfa(project, user_id, vendor, pin).await? {
                    user = enrolled;
                } else {
                    user = to_user(self.user_row(project, user_id).await?)?;
                }
            }
            Ok::<_, Error>(user)
        };
        let outcome = rest.await;
        if outcome.is_err() && !stored.load(Ordering::Relaxed) {
            // A removed factor can't be given back; the password is
            // kept (below). The metadata given back is the index's
            // (another update's, when this one was overtaken).
            if sent_metadata.load(Ordering::Relaxed) {
                let back = async {
                    let current = to_user(self.user_row(project, user_id).await?)?;
                    vendor
                        .set_metadata(&project.id, &pin.vendor_resource_id, &current.metadata)
                        .await
                        .map_err(Error::from)
                };
                if let Err(e) = back.await {
                    tracing::warn!(
                        user_id,
                        error = %e,
                        "could not give the vendor back the user's metadata"
                    );
                }
            }
            if sent_verified.load(Ordering::Relaxed)
                && let Err(e) = vendor
                    .set_email_verified(&project.id, &pin.vendor_resource_id, before.email_verified)
                    .await
            {
                tracing::warn!(user_id, error = %e, "could not give the vendor back the user's email verification");
            }
            if sent_verified.load(Ordering::Relaxed) {
                self.resync_from_vendor(project, user_id).await;
            }
            if sent_phone.load(Ordering::Relaxed)
                && let Err(e) = vendor
                    .set_phone(
                        &project.id,
                        &pin.vendor_resource_id,
                        before.phone_number.as_deref(),
                    )
                    .await
            {
                tracing::warn!(user_id, error = %e, "could not give the vendor back the user's phone number");
            }
        }
        if outcome.is_err() && input.password.is_some() {
            self.password_taken(project, user_id, input.keep_sessions)
                .await;
        }
        outcome
    }

    /// A new password the vendor took although the rest of its update
    /// failed: the index notes the change (sign-ins checked against the old
    /// password and not yet stored are refused, and `user.updated` names
    /// it) and the sessions the old one opened end, unless the caller keeps
    /// them. Failures are logged; the update's own error is what the caller
    /// is told.
    async fn password_taken(&self, project: &Project, user_id: &str, keep_sessions: bool) {
        let now = self.now();
        let noted = self
            .store
            .modify_user(
                &project.id,
                user_id,
                |row| {
                    row.password_set = true;
                    row.password_version += 1;
                    row.updated_at = now;
                    Ok::<_, StoreError>(())
                },
                |before, after| self.user_changes(project, before, after, &["password"]),
            )
            .await;
        if let Err(e) = noted {
            tracing::warn!(user_id, error = %e, "could not note a new password the vendor took");
        }
        if !keep_sessions
            && let Err(e) = self.revoke_all_sessions(project, user_id, None, None).await
        {
            tracing::warn!(user_id, error = %e, "could not end the sessions of a changed password");
        }
    }

    /// Enrols a TOTP factor: one request at a time per user holds the
    /// claim (others get `AUTH_MFA_ENROLLMENT_IN_PROGRESS`), and the flag
    /// turns on only with the secret in hand. A factor the vendor made for
    /// an enrolment that then failed is removed. `None` when another
    /// request finished enrolling first.
    async fn enroll_mfa(
        &self,
        project: &Project,
        user_id: &str,
        vendor: &dyn IdentityVendor,
        pin: &pins::Model,
    ) -> Result<Option<User>> {
        let claim = self
            .reserve(
                project,
                user_id,
                "mfa_enrollment",
                MFA_ENROLLMENT_CLAIM_MS,
                1,
            )
            .await?
            .map_err(|retry_after| {
                Error::new(
                    ErrorCode::AuthMfaEnrollmentInProgress,
                    format!("an MFA enrolment for user {user_id} is in progress"),
                )
                .retry_after(retry_after.min(60))
            })?;
        let outcome = async {
            if self.user_row(project, user_id).await?.mfa_enabled {
                return Ok(None);
            }
            let enrollment = vendor
                .enroll_totp(
                    &project.id,
                    &pin.vendor_resource_id,
                    &self.user_row(project, user_id).await?.email,
                )
                .await;
            let enrollment = match enrollment {
                Ok(e) => e,
                Err(e) => {
                    self.remove_factor(project, user_id, vendor, pin).await;
                    return Err(e.into());
                }
            };
            let now = self.now();
            let saved = self
                .store
                .modify_user(
                    &project.id,
                    user_id,
                    |row| {
                        row.mfa_enabled = true;
                        row.updated_at = now;
                        Ok::<_, Error>(())
                    },
                    |before, after| self.user_changes(project, before, after, &[]),
                )
                .await;
            match saved {
                Ok(Some((row, ()))) => {
                    let mut user = to_user(row)?;
                    user.mfa_enrollment = Some(enrollment);
                    Ok(Some(user))
                }
                other => {
                    self.remove_factor(project, user_id, vendor, pin).await;
                    other?;
                    Err(Error::user_not_found(user_id))
                }
            }
        }
        .await;
        self.store.release_attempt(&claim).await?;
        outcome
    }

    /// Removes a factor no caller holds the secret of; a failure is logged
    /// (the flag stays off, so sign-ins do not ask for it). A read that
    /// copied the vendor's flag while the factor existed is undone.
    async fn remove_factor(
        &self,
        project: &Project,
        user_id: &str,
        vendor: &dyn IdentityVendor,
        pin: &pins::Model,
    ) {
        if let Err(e) = vendor
            .disable_mfa(&project.id, &pin.vendor_resource_id)
            .await
        {
            tracing::warn!(vendor = %vendor.kind(), error = %e, "could not remove the factor of a failed MFA enrolment");
        }
        self.resync_from_vendor(project, user_id).await;
    }

    /// Forgets a user its vendor no longer has (deleted there): the index
    /// row, its pin and its sessions go, so no read serves it again.
    async fn forget_vanished_user(&self, project: &Project, user_id: &str) -> Result<()> {
        tracing::info!(
            user_id,
            "the vendor no longer has this user; removing it from the index"
        );
        let now = self.now();
        let whose = Deletion::Unreserved {
            reserved_before: now - DELETION_LEASE_MS,
        };
        if let Some(revoked) = self
            .store
            .delete_user(&project.id, user_id, now, whose, |revoked| {
                self.deleted_events(project, user_id, revoked, "deleted_at_vendor")
            })
            .await?
        {
            self.revocations.add(revoked);
        }
        Ok(())
    }

    /// Deletes a user at its vendor and everything authmux holds about it,
    /// revoking its sessions in the same transaction. A retry under the
    /// same idempotency key gets the first answer, not a 404.
    pub async fn delete_user(
        &self,
        project: &Project,
        user_id: &str,
        idempotency_key: Option<&str>,
    ) -> Result<()> {
        self.idempotent(
            project,
            "user.delete",
            idempotency_key,
            &user_id,
            move || async move {
                self.user_row(project, user_id).await?;
                // Reserve, then act: while the vendor deletes, a read that
                // finds the user gone there leaves the rows to this delete,
                // and a second delete is told the user is going.
                let since = self.now();
                if !self
                    .store
                    .reserve_deletion(&project.id, user_id, since, since - DELETION_LEASE_MS)
                    .await?
                {
                    return Err(Error::new(
                        ErrorCode::AuthUserNotFound,
                        format!("no user {user_id} in this project: it is being deleted"),
                    ));
                }
                // A request cancelled from here on (its caller went away)
                // gives the reservation up rather than holding it a lease.
                let mut guard = {
                    let (store, project_id, user_id) =
                        (self.store.clone(), project.id.clone(), user_id.to_owned());
                    super::abandon::Abandon::new(async move {
                        if let Err(e) = store.release_deletion(&project_id, &user_id, since).await {
                            tracing::warn!(error = %e, "could not release an abandoned user deletion");
                        }
                    })
                };
                let at_vendor = async {
                    let pin = self.user_pin(project, user_id).await?;
                    let vendor = self.pinned_vendor(project, &pin).await?;
                    vendor
                        .delete_user(&project.id, &pin.vendor_resource_id)
                        .await?;
                    Ok::<_, Error>(())
                }
                .await;
                if let Err(e) = at_vendor {
                    guard.disarm();
                    self.store
                        .release_deletion(&project.id, user_id, since)
                        .await?;
                    return Err(e);
                }
                let revoked = self
                    .store
                    .delete_user(
                        &project.id,
                        user_id,
                        self.now(),
                        Deletion::Reserved,
                        |revoked| self.deleted_events(project, user_id, revoked, "user.delete"),
                    )
                    .await?
                    .ok_or_else(|| Error::user_not_found(user_id))?;
                guard.disarm();
                self.revocations.add(revoked);
                Ok(())
            },
        )
        .await
    }

    /// The stored row of a user of this project, or `AUTH_USER_NOT_FOUND`.
    pub(crate) async fn user_row(&self, project: &Project, user_id: &str) -> Result<users::Model> {
        super::text::check_id("user_id", user_id)?;
        self.store
            .user(&project.id, user_id)
            .await?
            .ok_or_else(|| Error::user_not_found(user_id))
    }

    /// The pin of a user. Pins go in the same transaction as their user,
    /// so a missing pin means the user was deleted meanwhile.
    pub(crate) async fn user_pin(&self, project: &Project, user_id: &str) -> Result<pins::Model> {
        self.store
            .pin(&project.id, user_id)
            .await?
            .ok_or_else(|| Error::user_not_found(user_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_checked() {
        assert_eq!(
            normalize_email("  A@Example.com ").unwrap(),
            "A@Example.com"
        );
        for bad in [
            "", "   ", "no-at", "a@b", "a@@b.c", "@b.c", "a b@c.d", "a@.c", "a@c..d",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn phones_are_e164() {
        assert!(check_phone("+14155550100").is_ok());
        assert!(check_phone("+442071838750").is_ok());
        for bad in [
            "14155550100",
            "+",
            "+0123",
            "+1 415 555",
            "+1234567890123456",
            "+1a",
        ] {
            assert!(check_phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_bounded() {
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password(&"x".repeat(128)).is_ok());
        assert!(check_password(&"x".repeat(129)).is_err());
    }
}
