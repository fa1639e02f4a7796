//! The listener under abuse: clients that never finish their headers or
//! body, connections left idle, and more connections than allowed.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Backend, Server};

fn addr(s: &Server) -> String {
    s.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection; returns what it sent and
/// how long that took, or `None` if it was still open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<(String, Duration)> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + within).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Some((String::from_utf8_lossy(&got).into_owned(), start.elapsed()));
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_clients_are_cut_off() {
    let s = Server::start_with(Backend::Sqlite, |c| {
        c.listener.header_read_timeout_secs = 1;
        c.listener.body_timeout_secs = 1;
        c.listener.idle_timeout_secs = 2;
    })
    .await
    .unwrap();

    // Fifty requests whose headers never end: all closed by the deadline.
    let mut half_open = Vec::new();
    for _ in 0..50 {
        let mut c = TcpStream::connect(addr(&s)).await.unwrap();
        c.write_all(b"POST /v1/auth/user/create HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        half_open.push(c);
    }
    for c in &mut half_open {
        let closed = closed_within(c, Duration::from_secs(5)).await;
        assert!(
            closed.is_some(),
            "a half-open request was still held after 5 s"
        );
    }

    // A body that stops halfway: 400 naming the body once its time is up.
    let mut c = TcpStream::connect(addr(&s)).await.unwrap();
    let head = format!(
        "POST /v1/auth/user/create HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"email\":",
        s.key
    );
    c.write_all(head.as_bytes()).await.unwrap();
    let (reply, _) = closed_within(&mut c, Duration::from_secs(6))
        .await
        .expect("answered and closed");
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("did not arrive"), "{reply}");

    // A connection that sends nothing, and one idle after a request: both
    // closed after the idle timeout.
    let mut silent = TcpStream::connect(addr(&s)).await.unwrap();
    let mut kept = TcpStream::connect(addr(&s)).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 512];
    let n = kept.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let t0 = Instant::now();
    for c in [&mut silent, &mut kept] {
        closed_within(c, Duration::from_secs(8))
            .await
            .expect("an idle connection is closed");
    }
    let after = t0.elapsed();
    assert!(
        after >= Duration::from_millis(900),
        "not before its time: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped() {
    let s = Server::start_with(Backend::Sqlite, |c| {
        c.listener.max_connections = 2;
        c.listener.header_read_timeout_secs = 30;
        c.listener.idle_timeout_secs = 30;
    })
    .await
    .unwrap();
    let held = vec![
        TcpStream::connect(addr(&s)).await.unwrap(),
        TcpStream::connect(addr(&s)).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    let url = format!("{}/healthz", s.base);
    assert!(
        client.get(&url).send().await.is_err(),
        "a third connection waits while two are held"
    );
    drop(held);
    let mut served = false;
    for _ in 0..20 {
        if client
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "served once a connection was released");
}
