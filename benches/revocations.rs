//! Memory and lookup cost of the revocation set at a million revoked
//! sessions: authmux's compact set against a set of the id strings.
//!
//! Run: `cargo bench --bench revocations`

use std::collections::HashSet;
use std::hint::black_box;
use std::time::Instant;

use authmux::domain::{Revocations, new_id};

const N: usize = 1_000_000;

/// Resident memory of this process, bytes (Linux).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let ids: Vec<String> = (0..N).map(|_| new_id("ses")).collect();
    let probes: Vec<String> = (0..N).map(|_| new_id("ses")).collect();

    let before = rss();
    let strings: HashSet<String> = ids.iter().cloned().collect();
    let strings_bytes = rss().saturating_sub(before);

    let before = rss();
    let set = Revocations::default();
    set.add(ids.iter().cloned());
    let compact_bytes = rss().saturating_sub(before);
    assert_eq!(set.len(), N);

    let started = Instant::now();
    let mut hits = 0;
    for id in ids.iter().chain(&probes) {
        hits += usize::from(set.contains(black_box(id)));
    }
    let per_lookup = started.elapsed().as_nanos() as f64 / (2 * N) as f64;
    assert_eq!(hits, N);

    let started = Instant::now();
    let mut hits = 0;
    for id in ids.iter().chain(&probes) {
        hits += usize::from(strings.contains(black_box(id.as_str())));
    }
    let per_lookup_strings = started.elapsed().as_nanos() as f64 / (2 * N) as f64;
    assert_eq!(hits, N);

    println!("revocation set, {N} revoked sessions:");
    println!(
        "  compact (u128):  {:7.1} MiB ({:.0} B/session), contains {:.0} ns",
        mib(compact_bytes),
        compact_bytes as f64 / N as f64,
        per_lookup
    );
    println!(
        "  id strings:      {:7.1} MiB ({:.0} B/session), contains {:.0} ns",
        mib(strings_bytes),
        strings_bytes as f64 / N as f64,
        per_lookup_strings
    );
    drop(strings);
}
