//! Signing keys (ES256 and RS256): generation, public JWKs, RFC 7638
//! thumbprints, and the jsonwebtoken keys built from them.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error)]
#[error("signing key: {0}")]
pub struct KeyError(pub String);

/// The algorithms authmux signs and accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningAlg {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
}

impl SigningAlg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Es256 => "ES256",
            SigningAlg::Rs256 => "RS256",
        }
    }

    /// Parses a JOSE name; only ES256 and RS256 exist here.
    pub fn parse(s: &str) -> Option<SigningAlg> {
        match s {
            "ES256" => Some(SigningAlg::Es256),
            "RS256" => Some(SigningAlg::Rs256),
            _ => None,
        }
    }

    /// The jsonwebtoken algorithm.
    pub fn jwt(self) -> Algorithm {
        match self {
            SigningAlg::Es256 => Algorithm::ES256,
            SigningAlg::Rs256 => Algorithm::RS256,
        }
    }
}

impl std::str::FromStr for SigningAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s).ok_or_else(|| format!("{s:?} is not ES256 or RS256"))
    }
}

/// A public key that verifies tokens.
pub struct PublicKey {
    /// The key id.
    pub kid: String,
    /// The only algorithm this key verifies.
    pub alg: SigningAlg,
    /// The key in jsonwebtoken's form.
    pub decoding: DecodingKey,
    /// The key parsed once for aws-lc-rs, so a verification does not
    /// parse it again.
    pub verifier: ParsedPublicKey,
    /// The public JWK, as published.
    pub jwk: Value,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} {})", self.kid, self.alg.as_str())
    }
}

/// A private key that signs tokens.
pub struct PrivateKey {
    /// The key id (its public JWK's thumbprint).
    pub kid: String,
    /// Its algorithm.
    pub alg: SigningAlg,
    /// The key in jsonwebtoken's form.
    pub encoding: EncodingKey,
}

/// A freshly generated key pair: PKCS#8 DER of the private half (to seal
/// and store) and the public JWK (with `kid`).
pub struct GeneratedKey {
    /// PKCS#8 DER.
    pub pkcs8: Vec<u8>,
    /// The public JWK.
    pub jwk: Value,
}

/// Generates a key pair.
pub fn generate(alg: SigningAlg) -> Result<GeneratedKey, KeyError> {
    let err = |e: &dyn std::fmt::Debug| KeyError(format!("{e:?}"));
    let (pkcs8, mut jwk) = match alg {
        SigningAlg::Es256 => {
            let doc = EcdsaKeyPair::generate_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &SystemRandom::new(),
            )
            .map_err(|e| err(&e))?;
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref())
                .map_err(|e| err(&e))?;
            let point = pair.public_key().as_ref();
            (doc.as_ref().to_vec(), ec_jwk(point)?)
        }
        SigningAlg::Rs256 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|e| err(&e))?;
            let der = pair.as_der().map_err(|e| err(&e))?;
            let public = pair.public_key();
            let jwk = json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            });
            (der.as_ref().to_vec(), jwk)
        }
    };
    let kid = thumbprint(&jwk)?;
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg.as_str());
    jwk["use"] = json!("sig");
    Ok(GeneratedKey { pkcs8, jwk })
}

fn ec_jwk(point: &[u8]) -> Result<Value, KeyError> {
    if point.len() != 65 || point[0] != 4 {
        return Err(KeyError("unexpected EC public point".into()));
    }
    Ok(json!({
        "kty": "EC",
        "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    }))
}

/// The RFC 7638 thumbprint of a public JWK (SHA-256, base64url).
pub fn thumbprint(jwk: &Value) -> Result<String, KeyError> {
    let field = |name: &str| {
        jwk[name]
            .as_str()
            .ok_or_else(|| KeyError(format!("JWK lacks {name}")))
    };
    // Required members only, in lexicographic order, no white space.
    let canonical = match field("kty")? {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            field("crv")?,
            field("x")?,
            field("y")?
        ),
        "RSA" => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            field("e")?,
            field("n")?
        ),
        other => return Err(KeyError(format!("unsupported kty {other}"))),
    };
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// The signing half of a stored key.
pub fn private_key(kid: &str, alg: SigningAlg, pkcs8: &[u8]) -> Result<PrivateKey, KeyError> {
    let encoding = match alg {
        SigningAlg::Es256 => EncodingKey::from_ec_der(pkcs8),
        SigningAlg::Rs256 => {
            let pem = format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                STANDARD.encode(pkcs8)
            );
            EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| KeyError(e.to_string()))?
        }
    };
    Ok(PrivateKey {
        kid: kid.to_owned(),
        alg,
        encoding,
    })
}

/// A verifying key from a public JWK. The algorithm comes from the key:
/// its `alg` when given (ES256 or RS256 only), else its type (`EC` P-256
/// → ES256, `RSA` → RS256). Other keys are refused.
pub fn public_key(jwk: &Value) -> Result<PublicKey, KeyError> {
    let s = |name: &str| jwk[name].as_str();
    let kty = s("kty").ok_or_else(|| KeyError("JWK lacks kty".into()))?;
    let by_type = match (kty, s("crv")) {
        ("EC", Some("P-256")) => SigningAlg::Es256,
        ("RSA", _) => SigningAlg::Rs256,
        _ => return Err(KeyError(format!("unsupported key type {kty}"))),
    };
    if let Some(alg) = s("alg")
        && SigningAlg::parse(alg) != Some(by_type)
    {
        return Err(KeyError(format!("unsupported alg {alg} for a {kty} key")));
    }
    if s("use").is_some_and(|u| u != "sig") {
        return Err(KeyError("not a signing key".into()));
    }
    let member = |name: &str| {
        let text = s(name).ok_or_else(|| KeyError(format!("{kty} JWK lacks {name}")))?;
        URL_SAFE_NO_PAD
            .decode(text)
            .map(|bytes| (text, bytes))
            .map_err(|_| KeyError(format!("{kty} JWK member {name} is not base64url")))
    };
    let rejected = |e: aws_lc_rs::error::KeyRejected| KeyError(format!("{kty} JWK: {e}"));
    let (decoding, verifier) = match by_type {
        SigningAlg::Es256 => {
            let ((x, xb), (y, yb)) = (member("x")?, member("y")?);
            if xb.len() != 32 || yb.len() != 32 {
                return Err(KeyError("P-256 coordinates are 32 bytes".into()));
            }
            let point = [&[4u8][..], &xb, &yb].concat();
            (
                DecodingKey::from_ec_components(x, y),
                ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).map_err(rejected)?,
            )
        }
        SigningAlg::Rs256 => {
            let ((n, nb), (e, eb)) = (member("n")?, member("e")?);
            let components = RsaPublicKeyComponents { n: &nb, e: &eb };
            (
                DecodingKey::from_rsa_components(n, e),
                components
                    .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                    .map_err(rejected)?,
            )
        }
    };
    let decoding = decoding.map_err(|e| KeyError(e.to_string()))?;
    let kid = match s("kid") {
        Some(k) => k.to_owned(),
        None => thumbprint(jwk)?,
    };
    Ok(PublicKey {
        kid,
        alg: by_type,
        decoding,
        verifier,
        jwk: jwk.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example_thumbprint() {
        // The RSA example of RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        for alg in [SigningAlg::Es256, SigningAlg::Rs256] {
            let g = generate(alg).unwrap();
            let kid = g.jwk["kid"].as_str().unwrap().to_owned();
            assert_eq!(thumbprint(&g.jwk).unwrap(), kid);
            assert!(g.jwk.get("d").is_none(), "no private member in the JWK");
            let private = private_key(&kid, alg, &g.pkcs8).unwrap();
            let public = public_key(&g.jwk).unwrap();
            assert_eq!(public.alg, alg);
            let mut header = jsonwebtoken::Header::new(alg.jwt());
            header.kid = Some(kid.clone());
            let token = jsonwebtoken::encode(
                &header,
                &json!({"sub": "x", "exp": 4_000_000_000u64}),
                &private.encoding,
            )
            .unwrap();
            let mut v = jsonwebtoken::Validation::new(alg.jwt());
            v.required_spec_claims.clear();
            let data = jsonwebtoken::decode::<Value>(&token, &public.decoding, &v).unwrap();
            assert_eq!(data.claims["sub"], "x");
        }
    }

    #[test]
    fn foreign_keys_are_refused() {
        assert!(public_key(&json!({"kty": "oct", "k": "c2VjcmV0"})).is_err());
        assert!(public_key(&json!({"kty": "EC", "crv": "P-384", "x": "a", "y": "b"})).is_err());
        let g = generate(SigningAlg::Es256).unwrap();
        let mut jwk = g.jwk.clone();
        jwk["alg"] = json!("HS256");
        assert!(public_key(&jwk).is_err());
    }
}
