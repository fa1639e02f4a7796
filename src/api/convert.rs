//! Conversions between proto messages and domain values.

use pbjson_types::{ListValue, Struct, Value, value::Kind};
use serde_json::{Map, Number};

use crate::domain::{AuditEvent, ConsentEvent, ConsentState, User};
use crate::pb::Timestamp;
use crate::pb::v1 as pb;
use crate::store::entity::identities;

/// Unix milliseconds as a protobuf Timestamp.
pub fn timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A protobuf Struct as a JSON object. Whole numbers come back as integers.
pub fn struct_to_json(s: Struct) -> Map<String, serde_json::Value> {
    s.fields
        .into_iter()
        .map(|(k, v)| (k, value_to_json(v)))
        .collect()
}

fn value_to_json(v: Value) -> serde_json::Value {
    match v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(b),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s),
        Some(Kind::NumberValue(n)) => number_to_json(n),
        Some(Kind::StructValue(s)) => serde_json::Value::Object(struct_to_json(s)),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.into_iter().map(value_to_json).collect())
        }
    }
}

/// A double as JSON, as an integer when it is a whole number that fits.
pub fn number_to_json(n: f64) -> serde_json::Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.fract() == 0.0 && n.abs() < EXACT {
        serde_json::Value::Number(Number::from(n as i64))
    } else {
        Number::from_f64(n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null)
    }
}

/// A JSON object as a protobuf Struct.
pub fn json_to_struct(map: Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: map
            .into_iter()
            .map(|(k, v)| (k, json_to_value(v)))
            .collect(),
    }
}

fn json_to_value(v: serde_json::Value) -> Value {
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(a) => Kind::ListValue(ListValue {
            values: a.into_iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(o) => Kind::StructValue(json_to_struct(o)),
    };
    Value { kind: Some(kind) }
}

impl From<User> for pb::AuthUser {
    fn from(u: User) -> Self {
        pb::AuthUser {
            user_id: u.id,
            email: u.email,
            email_verified: u.email_verified,
            created_at: Some(timestamp(u.created_at)),
            metadata: Some(json_to_struct(u.metadata)),
            mfa_enabled: u.mfa_enabled,
            vendor: u.vendor,
            phone_number: u.phone_number,
            mfa_enrollment: u.mfa_enrollment.map(|e| pb::MfaEnrollment {
                secret: e.secret,
                otpauth_uri: e.otpauth_uri,
            }),
        }
    }
}

impl From<ConsentState> for pb::ConsentState {
    fn from(s: ConsentState) -> Self {
        pb::ConsentState {
            granted_at: s.granted_at.map(timestamp),
            category: s.category,
            granted: s.granted,
            source: s.source,
        }
    }
}

impl From<ConsentEvent> for pb::ConsentEvent {
    fn from(e: ConsentEvent) -> Self {
        pb::ConsentEvent {
            category: e.category,
            action: if e.granted { "grant" } else { "revoke" }.to_owned(),
            source: e.source,
            at: Some(timestamp(e.at)),
        }
    }
}

impl From<identities::Model> for pb::Identity {
    fn from(i: identities::Model) -> Self {
        pb::Identity {
            provider: i.provider,
            subject: i.subject,
            email: i.email,
            linked_at: Some(timestamp(i.created_at)),
        }
    }
}

impl From<AuditEvent> for pb::AuditEvent {
    fn from(e: AuditEvent) -> Self {
        let data = match e.data {
            serde_json::Value::Object(map) => map,
            _ => Map::new(),
        };
        pb::AuditEvent {
            id: e.id,
            r#type: e.kind,
            project_id: e.project_id,
            occurred_at: Some(timestamp(e.occurred_at)),
            user_id: e.user_id,
            api_key_id: e.api_key_id,
            request_id: e.request_id,
            data: Some(json_to_struct(data)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn structs_round_trip_with_integers_kept() {
        let v = json!({"a": 1, "b": 1.5, "c": [true, null, "x"], "d": {"e": -3}});
        let map = v.as_object().unwrap().clone();
        assert_eq!(struct_to_json(json_to_struct(map.clone())), map);
    }

    #[test]
    fn timestamps_split_millis() {
        let t = timestamp(1_700_000_000_123);
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_000_000));
        let t = timestamp(-1);
        assert_eq!((t.seconds, t.nanos), (-1, 999_000_000));
    }
}
