//! Input and token hygiene: whatever a client sends is a clear 4xx (never a
//! 500), an unauthenticated caller learns only 401, and tokens are checked
//! for everything RFC 9068 and RFC 7515 ask.

use serde_json::{Value, json};

use crate::attacks::{sso_session, user_with_password};
use crate::harness::{Backend, Server, Transport, expect_err, rest_result};
use crate::sessions::{claims, sign_with_server_key};
use authmux_testkit::contract;

/// `{"a":{"a":…{"a":1}}}`, `depth` objects deep.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!({"a": inner}))
}

async fn metadata_that_cant_be_kept(s: &Server, t: Transport) {
    let user = user_with_password(s, t, "meta@example.com").await;
    if t == Transport::Grpc {
        // Too deep for prost itself: sent as raw bytes, since the typed
        // client can't hold such a message either.
        let req = json!({"user_id": user, "metadata": {"deep": nested(40)}});
        let status = raw_grpc(
            s,
            "/authmux.v1.UserService/UpdateUser",
            "auth.user.update",
            req,
        )
        .await;
        let e = crate::harness::grpc_error(status);
        assert_eq!(e.code, "INVALID_ARGUMENT", "{e:?}");
        assert!(e.message.contains("nested"), "{e:?}");
    }
    let too_deep_for_rest = if t == Transport::Rest { 40 } else { 18 };
    for (metadata, what) in [
        (json!({"deep": nested(too_deep_for_rest)}), "nested"),
        (json!({"deep": nested(18)}), "nested deeper"),
        (json!({"big": 9_007_199_254_740_993_u64}), "2^53"),
        (
            json!({"list": [1, 2, {"neg": -9_007_199_254_740_993_i64}]}),
            "2^53",
        ),
    ] {
        let e = expect_err(
            s.call(
                t,
                "auth.user.update",
                json!({"user_id": user, "metadata": metadata}),
            )
            .await,
            "INVALID_ARGUMENT",
        );
        assert!(e.message.contains(what), "{what}: {e:?}");
    }
    // Nothing was stored; an exact large-ish integer and some nesting are fine.
    let ok = json!({"id": 9_007_199_254_740_991_u64, "n": nested(10)});
    let got = s
        .call(
            t,
            "auth.user.update",
            json!({"user_id": user, "metadata": ok}),
        )
        .await
        .unwrap();
    assert_eq!(got["metadata"], ok);
}
contract!(metadata_that_cant_be_kept);

/// Sends `req` (as JSON for the capability's message) as raw protobuf
/// bytes to a gRPC method; returns the status it fails with.
async fn raw_grpc(s: &Server, path: &str, capability: &str, req: Value) -> tonic::Status {
    use prost::Message;
    let pool = authmux::transcode::routes::pool(authmux::pb::DESCRIPTOR_SET).unwrap();
    let route = authmux::transcode::routes::routes(&pool)
        .unwrap()
        .into_iter()
        .find(|r| r.capability() == capability)
        .unwrap();
    let msg = prost_reflect::DynamicMessage::deserialize(route.input(), req).unwrap();
    let mut grpc = tonic::client::Grpc::new(s.channel.clone());
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(bytes::Bytes::from(msg.encode_to_vec()));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", s.key).parse().unwrap(),
    );
    grpc.unary(request, path.parse().unwrap(), RawCodec)
        .await
        .expect_err("the call fails")
}

/// A codec passing bytes through unchanged.
#[derive(Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = bytes::Bytes;
    type Decode = bytes::Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = bytes::Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: bytes::Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put(item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = bytes::Bytes;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<bytes::Bytes>, tonic::Status> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

async fn control_characters_are_refused(s: &Server, t: Transport) {
    let user = user_with_password(s, t, "ctl@example.com").await;
    for id in ["usr_\u{0}abc", "usr_\u{7}", "usr_\u{202E}x"] {
        expect_err(
            s.call(t, "auth.user.get", json!({"user_id": id})).await,
            "INVALID_ARGUMENT",
        );
    }
    expect_err(
        s.call(t, "auth.session.revoke", json!({"session_id": "ses_\u{0}"}))
            .await,
        "INVALID_ARGUMENT",
    );
    expect_err(
        s.call(
            t,
            "auth.session.create",
            json!({"user_id": user, "method": "sso\u{0}"}),
        )
        .await,
        "INVALID_ARGUMENT",
    );
    expect_err(
        s.call(
            t,
            "auth.consent.grant",
            json!({"user_id": user, "category": "marketing", "source": "form\u{0}"}),
        )
        .await,
        "INVALID_ARGUMENT",
    );
    for email in [
        "zw\u{200B}@example.com",
        "bidi\u{202E}@example.com",
        "nul\u{0}@example.com",
    ] {
        expect_err(
            s.call(t, "auth.user.create", json!({"email": email})).await,
            "INVALID_ARGUMENT",
        );
    }
    let history = s
        .call(t, "auth.consent.history", json!({"user_id": user}))
        .await
        .unwrap();
    assert_eq!(history["items"], json!([]), "nothing stored");
}
contract!(control_characters_are_refused);

/// Only ASCII letters fold: the Kelvin sign (U+212A) is not `K`; the
/// domain compares in its IDNA form.
async fn emails_fold_ascii_only(s: &Server, t: Transport) {
    s.call(t, "auth.user.create", json!({"email": "kate@example.com"}))
        .await
        .unwrap();
    expect_err(
        s.call(
            t,
            "auth.user.get_by_email",
            json!({"email": "\u{212A}ate@example.com"}),
        )
        .await,
        "AUTH_USER_NOT_FOUND",
    );
    let found = s
        .call(
            t,
            "auth.user.get_by_email",
            json!({"email": "KATE@EXAMPLE.COM"}),
        )
        .await
        .unwrap();
    assert_eq!(found["email"], "kate@example.com");
    // A Kelvin-sign address is another user, not a duplicate.
    s.call(
        t,
        "auth.user.create",
        json!({"email": "\u{212A}ate@example.com"}),
    )
    .await
    .unwrap();
    s.call(
        t,
        "auth.user.create",
        json!({"email": "ann@bücher.example"}),
    )
    .await
    .unwrap();
    expect_err(
        s.call(
            t,
            "auth.user.create",
            json!({"email": "ANN@BÜCHER.example"}),
        )
        .await,
        "AUTH_USER_EXISTS",
    );
}
contract!(emails_fold_ascii_only);

/// `user.delete` and `session.revoke_all_for_user` replay their first
/// answer under the same key, from the body, header or metadata.
async fn deletes_and_revoke_alls_are_idempotent(s: &Server, t: Transport) {
    let user = user_with_password(s, t, "idem-del@example.com").await;
    for _ in 0..2 {
        sso_session(s, t, &user).await;
    }
    let body = json!({"user_id": user, "idempotency_key": "ra-1"});
    let first = s
        .call(t, "auth.session.revoke_all_for_user", body.clone())
        .await
        .unwrap();
    assert_eq!(first["revoked"], 2);
    let again = s
        .call(t, "auth.session.revoke_all_for_user", body)
        .await
        .unwrap();
    assert_eq!(again["revoked"], 2, "replayed, not recounted");
    let header = [("idempotency-key", "ra-2")];
    let by_header = s
        .call_as(
            t,
            &s.key,
            "auth.session.revoke_all_for_user",
            json!({"user_id": user}),
            &header,
        )
        .await
        .unwrap();
    assert_eq!(by_header["revoked"], 0);

    let del = [("idempotency-key", "del-1")];
    for _ in 0..2 {
        s.call_as(
            t,
            &s.key,
            "auth.user.delete",
            json!({"user_id": user}),
            &del,
        )
        .await
        .unwrap();
    }
    expect_err(
        s.call(t, "auth.user.delete", json!({"user_id": user}))
            .await,
        "AUTH_USER_NOT_FOUND",
    );
}
contract!(deletes_and_revoke_alls_are_idempotent);

/// Access tokens minted here say `typ: at+jwt` and are refused without
/// `aud`, with a `crit` header, with another `typ` or with a lifetime past
/// the configured one.
async fn token_hygiene(s: &Server, t: Transport) {
    let user = user_with_password(s, t, "tok@example.com").await;
    let session = sso_session(s, t, &user).await;
    let access = session["access_token"].as_str().unwrap();
    let header: Value = {
        use base64::Engine;
        let h = access.split('.').next().unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(header["typ"], "at+jwt");
    let good = claims(access);
    let reason = |v: Value| v["reason"].as_str().unwrap_or("").to_owned();
    let verify = |token: String| async move {
        s.call(t, "auth.session.verify", json!({"session_id": token}))
            .await
            .unwrap()
    };

    let mut no_aud = good.clone();
    no_aud.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        reason(verify(sign_with_server_key(s, &no_aud)).await),
        "missing_claim"
    );
    let mut long = good.clone();
    long["exp"] = json!(good["iat"].as_i64().unwrap() + 7 * 24 * 3600);
    assert_eq!(
        reason(verify(sign_with_server_key(s, &long)).await),
        "lifetime_too_long"
    );
    let signer = s.domain.keyring().signer();
    let sign_with = |typ: Option<&str>, crit: bool| {
        let mut h = jsonwebtoken::Header::new(signer.alg.jwt());
        h.kid = Some(signer.kid.clone());
        h.typ = typ.map(str::to_owned);
        if crit {
            h.crit = Some(vec!["exp".into()]);
        }
        jsonwebtoken::encode(&h, &good, &signer.encoding).unwrap()
    };
    assert_eq!(
        reason(verify(sign_with(Some("JWT"), false)).await),
        "wrong_type"
    );
    assert_eq!(reason(verify(sign_with(None, false)).await), "wrong_type");
    assert_eq!(
        reason(verify(sign_with(Some("at+jwt"), true)).await),
        "wrong_type"
    );
    let v = verify(sign_with(Some("at+jwt"), false)).await;
    assert_eq!(v["valid"], true, "{v}");
}
contract!(token_hygiene);

/// REST-only rules: authentication before the body is read, duplicate
/// keys, nesting, and the POST form of verify.
async fn rest_rules(backend: Backend) {
    let Some(s) = Server::start(backend).await else {
        return;
    };
    let url = format!("{}/v1/auth/user/create", s.base);
    // No key and a bad body: 401, nothing about the body.
    for auth in [None, Some("Bearer amx_not_a_key")] {
        let mut rb = s.http.post(&url).body("{\"email\": 5, \"nope\": [}");
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        let e = expect_err(
            rest_result(rb.send().await.unwrap()).await,
            "AUTH_INVALID_API_KEY",
        );
        assert!(!e.message.contains("email"), "{e:?}");
    }
    let post = |body: String| {
        s.http
            .post(&url)
            .bearer_auth(&s.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let e = expect_err(
        rest_result(
            post(r#"{"email": "a@example.com", "email": "b@example.com"}"#.into())
                .await
                .unwrap(),
        )
        .await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("twice"), "{e:?}");
    let deep = json!({"email": "deep@example.com", "metadata": nested(40)}).to_string();
    let e = expect_err(
        rest_result(post(deep).await.unwrap()).await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("nested"), "{e:?}");

    // Verify by POST keeps the token out of the URL.
    let user = user_with_password(&s, Transport::Rest, "post@example.com").await;
    let session = sso_session(&s, Transport::Rest, &user).await;
    let v = rest_result(
        s.http
            .post(format!("{}/v1/auth/session/verify", s.base))
            .bearer_auth(&s.key)
            .json(&json!({"session_id": session["access_token"]}))
            .send()
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["user_id"], user.as_str());
    // The OpenAPI document lists both bindings under distinct ids.
    let doc = s.openapi().await;
    assert!(doc["paths"]["/v1/auth/session/verify"]["post"].is_object());
}

#[tokio::test]
async fn rest_rules_sqlite() {
    rest_rules(Backend::Sqlite).await
}

#[tokio::test]
async fn rest_rules_postgres() {
    rest_rules(Backend::Postgres).await
}

/// Made-up gRPC paths, even unauthenticated, don't grow `/metrics`.
#[tokio::test]
async fn metric_labels_are_bounded() {
    let s = Server::start(Backend::Sqlite).await.unwrap();
    let metrics = || async {
        s.http
            .get(format!("{}/metrics", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let send = |path: String| {
        s.http
            .post(format!("{}{path}", s.base))
            .header("content-type", "application/grpc")
            .body(vec![0u8, 0, 0, 0, 0])
            .send()
    };
    send("/authmux.v1.UserService/Warmup0".into())
        .await
        .unwrap();
    let before = metrics().await.len();
    for i in 0..300 {
        send(format!("/x{i}.Svc/Method{i}")).await.unwrap();
    }
    let after = metrics().await;
    assert!(
        after.len() < before + 2_000,
        "{} → {} bytes",
        before,
        after.len()
    );
    assert!(!after.contains("Method17"), "made-up paths are not labels");
    assert!(after.contains("rpc=\"unknown\""));
}

/// Every REST route reaches its service: none is left out of the table
/// the transcoder calls through, and an empty request, with made-up path
/// values, is answered with a 2xx or a 4xx that names the problem.
#[tokio::test]
async fn every_rest_route_reaches_its_service() {
    let s = Server::start(Backend::Sqlite).await.unwrap();
    let doc = s.openapi().await;
    let paths = doc["paths"].as_object().expect("paths");
    let mut calls = 0;
    for (template, operations) in paths {
        let path = template
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in operations.as_object().expect("operations").keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut rb = s
                .http
                .request(method.clone(), format!("{}{path}", s.base))
                .bearer_auth(&s.key);
            if method != reqwest::Method::GET {
                rb = rb.header("content-type", "application/json").body("{}");
            }
            let resp = rb.send().await.unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap();
            assert!(
                status.is_success() || status.is_client_error(),
                "{method} {path}: {status} {body}"
            );
            if let Some(e) = body.get("error") {
                assert_ne!(e["code"], "UNIMPLEMENTED", "{method} {path}: {body}");
                assert!(
                    e["message"].as_str().is_some_and(|m| !m.is_empty()),
                    "{method} {path}: {body}"
                );
            }
            calls += 1;
        }
    }
    assert!(
        calls >= 30,
        "only {calls} operations in the OpenAPI document"
    );
}
