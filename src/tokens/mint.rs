//! Minting access tokens with the current signing key.

use serde_json::json;

use super::Keyring;

/// What an access token says.
pub struct AccessClaims<'a> {
    /// `iss`: the public URL of this service.
    pub issuer: &'a str,
    /// `sub`: the user.
    pub user_id: &'a str,
    /// `aud`: the project.
    pub project_id: &'a str,
    /// `sid`: the session.
    pub session_id: &'a str,
    /// How the user signed in (`amr`).
    pub amr: &'a serde_json::Value,
    /// `iat`, Unix seconds.
    pub issued_at: i64,
    /// `exp`, Unix seconds.
    pub expires_at: i64,
    /// `jti`.
    pub token_id: &'a str,
}

/// The JWT `typ` of access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Signs an access token with the keyring's current key.
pub fn access_token(
    keyring: &Keyring,
    c: &AccessClaims<'_>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = json!({
        "iss": c.issuer,
        "sub": c.user_id,
        "aud": c.project_id,
        "sid": c.session_id,
        "iat": c.issued_at,
        "exp": c.expires_at,
        "jti": c.token_id,
        "amr": c.amr,
    });
    let signer = keyring.signer();
    let mut header = jsonwebtoken::Header::new(signer.alg.jwt());
    header.kid = Some(signer.kid.clone());
    header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
    jsonwebtoken::encode(&header, &claims, &signer.encoding)
}
