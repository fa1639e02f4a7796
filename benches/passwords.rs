//! What a new password costs before it is stored: the built-in provider's
//! strength check (zxcvbn, on the first 32 characters) for a short common
//! password, a passphrase, the longest password accepted (128 characters)
//! and one made of the characters zxcvbn's l33t matcher finds costliest,
//! next to the argon2id hash that follows it.
//!
//! Run: `cargo bench --bench passwords`

use authmux::passwords::{email_words, guessable};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("password_policy");
    const EMAIL: &str = "ann.lee@example.com";
    let words = email_words(EMAIL);
    let context: Vec<&str> = words.iter().map(String::as_str).collect();
    let longest: String = "correct horse battery staple violet anchor "
        .chars()
        .cycle()
        .take(128)
        .collect();
    // Every character one that zxcvbn's l33t matcher reads as a letter:
    // the most substitutions it has to try.
    let leet: String = "4@8(6<{[3!1|0$5+7%2".chars().cycle().take(128).collect();
    for (name, password) in [
        ("common_8", "iloveyou"),
        ("passphrase_22", "another fine password!"),
        ("longest_128", longest.as_str()),
        ("l33t_128", leet.as_str()),
    ] {
        g.bench_function(name, |b| b.iter(|| guessable(password, &context)));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    g.sample_size(10);
    g.bench_function("check_and_argon2id", |b| {
        b.iter(|| {
            rt.block_on(authmux::passwords::hash_new(
                "another fine password!".into(),
                EMAIL,
            ))
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(passwords_bench, bench);
criterion_main!(passwords_bench);
