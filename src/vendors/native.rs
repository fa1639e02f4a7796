//! The built-in provider: identities live in authmux's own store, with
//! argon2id password hashes and sealed TOTP secrets.

use totp_rs::{Algorithm, Secret, TOTP};

use super::{
    IdentityVendor, MfaEnrollment, NewIdentity, PasswordCheck, SignInContext, VendorKind,
    VendorSpec,
};
use super::{Result, VendorError};
use crate::crypto::MasterKey;
use crate::store::Store;
use crate::store::entity::native_credentials;

/// The TOTP issuer shown in authenticator apps.
const TOTP_ISSUER: &str = "authmux";
/// The TOTP time step, seconds (RFC 6238 default).
const TOTP_STEP: u64 = 30;

fn totp(secret: Vec<u8>, account: String) -> Result<TOTP> {
    TOTP::new(
        Algorithm::SHA1,
        6,
        0,
        TOTP_STEP,
        secret,
        Some(TOTP_ISSUER.to_owned()),
        account,
    )
    .map_err(VendorError::internal)
}

/// The built-in provider, as the registry knows it.
pub const SPEC: VendorSpec = VendorSpec {
    name: "native",
    setup_hint: "the built-in provider needs no configuration",
    build: |_, _| Err(VendorError::Invalid("native needs no credentials".into())),
};

/// The built-in identity provider.
pub struct Native {
    store: Store,
    master: MasterKey,
}

impl Native {
    /// A provider over `store`, sealing secrets with `master`.
    pub fn new(store: Store, master: MasterKey) -> Self {
        Native { store, master }
    }

    fn totp_context(project_id: &str, user_id: &str) -> Vec<u8> {
        format!("totp:{project_id}:{user_id}").into_bytes()
    }

    async fn credentials(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> Result<native_credentials::Model> {
        Ok(self
            .store
            .native_credentials(project_id, user_id)
            .await?
            .unwrap_or(native_credentials::Model {
                project_id: project_id.to_owned(),
                user_id: user_id.to_owned(),
                password_hash: None,
                totp_secret: None,
                totp_last_step: None,
            }))
    }
}

/// A credentials write that found no row: the user was deleted (a
/// built-in user has credentials from its creation on).
fn written(found: bool) -> Result<()> {
    if found {
        Ok(())
    } else {
        Err(VendorError::NotFound(VendorKind::Native))
    }
}

/// A new TOTP secret for `account`: its raw bytes and what the user is shown.
pub fn new_totp(account: &str) -> Result<(Vec<u8>, MfaEnrollment)> {
    let bytes = Secret::generate_secret()
        .to_bytes()
        .map_err(VendorError::internal)?;
    let totp = totp(bytes.clone(), account.to_owned())?;
    Ok((
        bytes,
        MfaEnrollment {
            secret: totp.get_secret_base32(),
            otpauth_uri: totp.get_url(),
        },
    ))
}

#[async_trait::async_trait]
impl IdentityVendor for Native {
    fn kind(&self) -> VendorKind {
        VendorKind::Native
    }

    async fn create_user(&self, project_id: &str, new: NewIdentity<'_>) -> Result<String> {
        let password_hash = match new.password {
            Some(p) => Some(crate::passwords::hash_new(p.to_owned(), new.email).await?),
            None => None,
        };
        self.store
            .put_native_credentials(native_credentials::Model {
                project_id: project_id.to_owned(),
                user_id: new.user_id.to_owned(),
                password_hash,
                totp_secret: None,
                totp_last_step: None,
            })
            .await?;
        Ok(new.user_id.to_owned())
    }

    async fn find_user_by_email(&self, _: &str, _: &str) -> Result<Option<super::FoundUser>> {
        // The index is the record of truth; a native create never fails
        // over, so there is nothing to look up.
        Ok(None)
    }

    async fn fetch_user(&self, _: &str, _: &str) -> Result<Option<super::VendorUser>> {
        Ok(None)
    }

    async fn set_metadata(
        &self,
        _: &str,
        _: &str,
        _: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        Ok(())
    }

    async fn set_email_verified(&self, _: &str, _: &str, _: bool) -> Result<()> {
        // The user index is the record of truth for native users.
        Ok(())
    }

    async fn enroll_totp(
        &self,
        project_id: &str,
        vendor_user_id: &str,
        email: &str,
    ) -> Result<MfaEnrollment> {
        let (bytes, enrollment) = new_totp(email)?;
        let sealed = self
            .master
            .seal(&bytes, &Self::totp_context(project_id, vendor_user_id));
        written(
            self.store
                .set_native_totp(project_id, vendor_user_id, Some(sealed))
                .await?,
        )?;
        Ok(enrollment)
    }

    async fn disable_mfa(&self, project_id: &str, vendor_user_id: &str) -> Result<()> {
        written(
            self.store
                .set_native_totp(project_id, vendor_user_id, None)
                .await?,
        )
    }

    async fn set_phone(&self, _: &str, _: &str, _: Option<&str>) -> Result<()> {
        // The user index is the record of truth for native users.
        Ok(())
    }

    async fn set_password(
        &self,
        project_id: &str,
        vendor_user_id: &str,
        email: &str,
        password: &str,
    ) -> Result<()> {
        let hash = crate::passwords::hash_new(password.to_owned(), email).await?;
        written(
            self.store
                .set_native_password(project_id, vendor_user_id, hash)
                .await?,
        )
    }

    async fn delete_user(&self, project_id: &str, vendor_user_id: &str) -> Result<()> {
        self.store
            .delete_native_credentials(project_id, vendor_user_id)
            .await?;
        Ok(())
    }

    async fn verify_password(
        &self,
        project_id: &str,
        vendor_user_id: &str,
        password: &str,
        _cx: SignInContext<'_>,
    ) -> Result<PasswordCheck> {
        let creds = self.credentials(project_id, vendor_user_id).await?;
        Ok(
            if crate::passwords::verify(password.to_owned(), creds.password_hash).await? {
                PasswordCheck::Right(None)
            } else {
                PasswordCheck::Wrong
            },
        )
    }

    async fn verify_totp(
        &self,
        project_id: &str,
        vendor_user_id: &str,
        code: &str,
    ) -> Result<bool> {
        let creds = self.credentials(project_id, vendor_user_id).await?;
        let Some(sealed) = creds.totp_secret else {
            return Ok(false);
        };
        let secret = self
            .master
            .open(&sealed, &Self::totp_context(project_id, vendor_user_id))?;
        let totp = totp(secret, "user".to_owned())?;
        let now = u64::try_from(self.store.clock().now_secs()).map_err(VendorError::internal)?;
        let current = now / TOTP_STEP;
        // RFC 6238 with one step of drift either way.
        for step in [current.saturating_sub(1), current, current + 1] {
            if totp.check(code, step * TOTP_STEP) {
                return Ok(self
                    .store
                    .claim_totp_step(project_id, vendor_user_id, step as i64)
                    .await?);
            }
        }
        Ok(false)
    }
}
