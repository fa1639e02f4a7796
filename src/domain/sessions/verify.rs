//! Verification of a session id or an access token (authmux's own or a
//! vendor's), with revocation checked on every call.

use super::{LiveSession, Verification};
use crate::domain::{Domain, Error, Project, Result};
use crate::tokens::cache::TokenDigest;
use crate::tokens::jwks::JwksError;
use crate::tokens::mint::ACCESS_TOKEN_TYP;
use crate::tokens::verify::{Claims, Expect, Invalid, Jwt};
use crate::vendors::{TokenSource, VendorKind};

impl Domain {
    /// Checks a session id (`ses_…`) or an access token. Anything that is
    /// not a valid live session is `valid: false` with a reason.
    pub async fn verify_session(&self, project: &Project, token: &str) -> Result<Verification> {
        crate::domain::text::check_visible("session_id", token)?;
        if token.starts_with("ses_") {
            return self.verify_session_id(project, token).await;
        }
        self.verify_jwt(project, token).await
    }

    async fn verify_session_id(&self, project: &Project, id: &str) -> Result<Verification> {
        let now = self.now();
        let live = match self.live_sessions.get(id, now) {
            Some(live) => live,
            None => {
                let Some(s) = self
                    .session_reads
                    .session(&self.store, &project.id, id)
                    .await?
                else {
                    return Ok(Verification::invalid(Invalid::UnknownSession));
                };
                if s.revoked_at.is_some() {
                    return Ok(Verification::invalid(Invalid::Revoked));
                }
                if s.expires_at <= now {
                    return Ok(Verification::invalid(Invalid::Expired));
                }
                let live = LiveSession {
                    project_id: s.project_id,
                    user_id: s.user_id,
                    expires_at: s.expires_at,
                };
                self.live_sessions.put(id, live.clone(), s.expires_at);
                live
            }
        };
        if live.project_id != project.id {
            return Ok(Verification::invalid(Invalid::UnknownSession));
        }
        if self.revocations.contains(id) {
            return Ok(Verification::invalid(Invalid::Revoked));
        }
        Ok(Verification {
            valid: true,
            user_id: Some(live.user_id),
            expires_at: Some(live.expires_at),
            reason: None,
        })
    }

    async fn verify_jwt(&self, project: &Project, token: &str) -> Result<Verification> {
        let now = self.now();
        let audience = Some(project.id.as_str());
        let digest = TokenDigest::of(token);
        let claims = match self.verified.get(&digest, audience, now) {
            Some(c) => c,
            None => {
                let jwt = match Jwt::parse(token) {
                    Ok(jwt) => jwt,
                    Err(r) => return Ok(Verification::invalid(r)),
                };
                let vendor =
                    jwt.issuer()
                        .filter(|iss| *iss != self.sessions.issuer)
                        .map(|iss| async move {
                            let adapters = self.token_issuers(project).await?;
                            Ok::<_, Error>(crate::domain::byok::by_issuer(adapters, iss).await)
                        });
                let vendor = match vendor {
                    Some(found) => found.await?,
                    None => None,
                };
                let checked = match vendor {
                    Some((vendor, source)) => {
                        self.verify_vendor_jwt(project, &jwt, vendor.kind(), &source)
                            .await?
                    }
                    None => self.verify_jwt_fully(project, &jwt),
                };
                match checked {
                    Ok(c) => {
                        self.verified.put(&digest, audience, &c);
                        c
                    }
                    Err(r) => return Ok(Verification::invalid(r)),
                }
            }
        };
        Ok(self.live_claims(claims))
    }

    /// Verifies a vendor's token against its JWKS and maps its session back
    /// to authmux's: the claims returned carry authmux's user and session ids.
    async fn verify_vendor_jwt(
        &self,
        project: &Project,
        jwt: &Jwt<'_>,
        vendor: VendorKind,
        source: &TokenSource,
    ) -> Result<Result<Claims, Invalid>> {
        let key = match self.vendors.vendor_key(source, &jwt.head.kid).await {
            Ok(k) => k,
            Err(JwksError::UnknownKey(_)) => return Ok(Err(Invalid::UnknownKey)),
            Err(JwksError::Unavailable(_)) => return Ok(Err(Invalid::KeysUnavailable)),
        };
        let expect = Expect {
            issuer: &source.issuer,
            audience: None,
            max_lifetime_secs: None,
            now_secs: self.store.clock().now_secs(),
        };
        let claims = match jwt.verify(&key, &expect) {
            Ok(c) => c,
            Err(r) => return Ok(Err(r)),
        };
        let Some(vendor_sid) = claims.session() else {
            return Ok(Err(Invalid::MissingClaim));
        };
        let Some(pin) = self
            .store
            .pin_by_vendor_resource(&project.id, vendor.as_str(), vendor_sid)
            .await?
        else {
            return Ok(Err(Invalid::UnknownSession));
        };
        let Some(session) = self.store.session(&project.id, &pin.resource_id).await? else {
            return Ok(Err(Invalid::UnknownSession));
        };
        Ok(Ok(Claims {
            sub: session.user_id,
            exp: claims.exp,
            iat: claims.iat,
            sid: Some(session.id),
            session_id: None,
        }))
    }

    fn live_claims(&self, claims: Claims) -> Verification {
        match claims.session() {
            Some(sid) if self.revocations.contains(sid) => Verification::invalid(Invalid::Revoked),
            Some(_) => Verification {
                valid: true,
                user_id: Some(claims.sub),
                expires_at: Some(claims.exp * 1000),
                reason: None,
            },
            None => Verification::invalid(Invalid::MissingClaim),
        }
    }

    fn verify_jwt_fully(&self, project: &Project, jwt: &Jwt<'_>) -> Result<Claims, Invalid> {
        let key = self.keyring.key(&jwt.head.kid).ok_or(Invalid::UnknownKey)?;
        let expect = Expect {
            issuer: &self.sessions.issuer,
            audience: Some(&project.id),
            max_lifetime_secs: Some(self.sessions.access_ttl.as_secs() as i64),
            now_secs: self.store.clock().now_secs(),
        };
        let claims = jwt.verify(&key, &expect)?;
        // Well signed but of another kind (an ID token, say): refused.
        Expect::check_head(&jwt.head, ACCESS_TOKEN_TYP)?;
        Ok(claims)
    }
}
