//! Raw JWT verification in process, ES256 and RS256: the floor that
//! `session.verify` can't beat, once with the CPU's caches warm from the
//! check before and once after other work. Beside it, what the
//! verified-token cache adds: a hit, and a cold token's miss and insert.
//!
//! Run: `cargo bench --bench verify`

use authmux::tokens::Claims;
use authmux::tokens::cache::{TokenDigest, VerifiedTokens};
use authmux::tokens::keys::{self, SigningAlg};
use authmux::tokens::verify::{self, Expect};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("jwt_verify");
    let mut scratch = vec![0u8; 8 << 20];
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
        let check = || {
            let head = verify::head(&token).unwrap();
            assert_eq!(head.alg, public.alg);
            verify::verify(&token, &public, &expect).unwrap()
        };
        g.bench_function(alg.as_str(), |b| b.iter(check));
        // The same check after other work has been through the CPU's
        // caches, as in a server between two cold tokens: each check runs
        // after 8 MiB were written (not timed), so the key and the curve's
        // tables are read back from memory.
        g.bench_function(format!("{}_after_other_work", alg.as_str()), |b| {
            b.iter_batched(
                || {
                    for (i, byte) in scratch.iter_mut().enumerate().step_by(64) {
                        *byte = byte.wrapping_add(i as u8);
                    }
                    // Kept, so that the writes are not optimised away.
                    std::hint::black_box(&mut scratch);
                },
                |()| check(),
                criterion::BatchSize::PerIteration,
            )
        });
        g.bench_function(format!("{}_sign", alg.as_str()), |b| {
            b.iter(|| jsonwebtoken::encode(&header, &claims, &private.encoding).unwrap())
        });
    }
    g.finish();
}

/// The verified-token cache: a hit (a token seen before), and a lookup
/// with an insert on each miss, cycling over 100,000 tokens against the
/// cache's 16,384 entries (mostly misses: a cold token's cache cost).
fn cache(c: &mut Criterion) {
    let mut g = c.benchmark_group("verified_tokens");
    let now_ms = authmux::clock::Clock::default().now_secs() * 1000;
    let claims = |i: usize| Claims {
        sub: format!("usr_0193{i:028x}"),
        exp: now_ms / 1000 + 900,
        iat: Some(now_ms / 1000),
        sid: Some(format!("ses_0193{i:028x}")),
        session_id: None,
    };
    let digests: Vec<TokenDigest> = (0..100_000)
        .map(|i| TokenDigest::of(&format!("token-{i}")))
        .collect();
    let cache = VerifiedTokens::default();
    cache.put(&digests[0], Some("prj_1"), &claims(0));
    g.bench_function("hit", |b| {
        b.iter(|| cache.get(&digests[0], Some("prj_1"), now_ms).unwrap())
    });
    let cache = VerifiedTokens::default();
    let made: Vec<Claims> = (0..digests.len()).map(claims).collect();
    let mut i = 0;
    g.bench_function("cycle_100000_tokens", |b| {
        b.iter(|| {
            i = (i + 1) % digests.len();
            if cache.get(&digests[i], Some("prj_1"), now_ms).is_none() {
                cache.put(&digests[i], Some("prj_1"), &made[i]);
            }
        })
    });
    g.finish();
}

criterion_group!(verify_bench, bench, cache);
criterion_main!(verify_bench);
