//! Raw JWT verification in process, ES256 and RS256: the floor that
//! `session.verify` can't beat.
//!
//! Run: `cargo bench --bench verify`

use authmux::tokens::keys::{self, SigningAlg};
use authmux::tokens::verify::{self, Expect};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("jwt_verify");
    for alg in [SigningAlg::Es256, SigningAlg::Rs256] {
        let generated = keys::generate(alg).unwrap();
        let kid = generated.jwk["kid"].as_str().unwrap().to_owned();
        let private = keys::private_key(&kid, alg, &generated.pkcs8).unwrap();
        let public = keys::public_key(&generated.jwk).unwrap();
        let mut header = jsonwebtoken::Header::new(alg.jwt());
        header.kid = Some(kid);
        let now = authmux::clock::Clock::default().now_secs();
        let claims = json!({"iss": "https://issuer.example", "sub": "usr_1", "aud": "prj_1",
                            "sid": "ses_1", "iat": now, "exp": now + 3600, "jti": "j", "amr": ["pwd"]});
        let token = jsonwebtoken::encode(&header, &claims, &private.encoding).unwrap();
        let expect = Expect {
            issuer: "https://issuer.example",
            audience: Some("prj_1"),
            max_lifetime_secs: Some(3600),
            now_secs: now,
        };
        g.bench_function(alg.as_str(), |b| {
            b.iter(|| {
                let head = verify::head(&token).unwrap();
                assert_eq!(head.alg, public.alg);
                verify::verify(&token, &public, &expect).unwrap()
            })
        });
        g.bench_function(format!("{}_sign", alg.as_str()), |b| {
            b.iter(|| jsonwebtoken::encode(&header, &claims, &private.encoding).unwrap())
        });
    }
    g.finish();
}

criterion_group!(verify_bench, bench);
criterion_main!(verify_bench);
