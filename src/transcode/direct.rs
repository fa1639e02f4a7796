//! REST's way into the services: a table of every unary method, generated
//! by `build.rs` from the same services tonic serves, that calls the
//! service trait in process with the typed request. A REST call is checked
//! against the same rules and answered by the same code as a gRPC call, but
//! pays no HTTP request, gRPC framing, body or trailers in between. The
//! typed reply is written as JSON directly, with no encoding and decoding
//! of it between the service and the caller.

use prost_reflect::DynamicMessage;
use tonic::{Request, Status};

/// Turns the generated table of a package's unary methods
/// (`"/pkg.Service/Method" => service_server::Service::method(Request) -> Reply;`)
/// into `call_direct`, which serves a gRPC path by calling that method and
/// writes the reply as REST's JSON.
macro_rules! direct_calls {
    ($($path:literal => $module:ident :: $service:ident :: $method:ident ($input:ty) -> $output:ty;)*) => {
        /// Serves the unary method at the gRPC path `path` with `api`
        /// directly; the reply's JSON. The request is checked as the gRPC
        /// codec checks it.
        pub(crate) async fn call_direct(
            api: &crate::api::Api,
            path: &str,
            request: tonic::Request<prost_reflect::DynamicMessage>,
        ) -> Result<Vec<u8>, tonic::Status> {
            match path {
                $($path => {
                    let request = crate::transcode::direct::typed::<$input>(request)?;
                    let reply =
                        <crate::api::Api as $module::$service>::$method(api, request).await?;
                    crate::transcode::direct::reply_json(reply.get_ref())
                })*
                _ => Err(tonic::Status::unimplemented(format!("no unary method {path}"))),
            }
        }

        /// The JSON `call_direct` writes for the reply `encoded` of the
        /// method at `path` (what a REST caller sees for a gRPC reply);
        /// `None` for a path that has no unary method.
        pub fn encoded_reply_json(
            path: &str,
            encoded: &[u8],
        ) -> Option<Result<Vec<u8>, tonic::Status>> {
            use prost::Message as _;
            match path {
                $($path => Some(
                    <$output>::decode(encoded)
                        .map_err(|e| tonic::Status::internal(e.to_string()))
                        .and_then(|reply| crate::transcode::direct::reply_json(&reply)),
                ),)*
                _ => None,
            }
        }
    };
}
pub(crate) use direct_calls;

/// The typed request of `request`, checked as [`crate::api::codec`]
/// checks a gRPC request: one that can't be decoded is the caller's error,
/// and the contract's rules hold.
pub(crate) fn typed<T>(request: Request<DynamicMessage>) -> Result<Request<T>, Status>
where
    T: prost::Message + prost::Name + Default,
{
    let (metadata, extensions, message) = request.into_parts();
    let typed = message
        .transcode_to::<T>()
        .map_err(crate::api::codec::undecodable)?;
    crate::api::rules::RULES
        .check_message::<T>(&message)
        .map_err(crate::api::to_status)?;
    Ok(Request::from_parts(metadata, extensions, typed))
}

/// A reply's JSON: written straight from the typed message by the serde
/// code generated from the protos (proto field names, every field without
/// presence printed), with whole doubles as integers.
pub(crate) fn reply_json<T: serde::Serialize>(reply: &T) -> Result<Vec<u8>, Status> {
    super::json::to_bytes(reply).map_err(|e| Status::internal(format!("encoding the reply: {e}")))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use prost::Message as _;
    use prost_reflect::{DynamicMessage, Kind, MapKey, MessageDescriptor, SerializeOptions, Value};

    use crate::pb::DESCRIPTOR_SET;
    use crate::transcode::{json, routes};

    /// A message in prost-reflect's proto3 JSON form, the reference: proto
    /// field names, fields without presence printed.
    struct Reflected<'a>(&'a DynamicMessage);

    impl serde::Serialize for Reflected<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let options = SerializeOptions::new()
                .use_proto_field_name(true)
                .skip_default_fields(false);
            self.0.serialize_with_options(serializer, &options)
        }
    }

    /// A message of type `desc` with every field given: the `variant`th
    /// member of each oneof, two items in each list and map, and nested
    /// messages filled the same way to a depth of four.
    fn filled(desc: &MessageDescriptor, variant: usize, depth: usize) -> DynamicMessage {
        if desc.full_name() == "google.protobuf.Struct" {
            let value = serde_json::json!({"n": 3, "x": 2.5, "list": [true, null, "é"], "nested": {"k": "v"}});
            return DynamicMessage::deserialize(desc.clone(), value).unwrap();
        }
        let mut message = DynamicMessage::new(desc.clone());
        if desc.full_name() == "google.protobuf.Timestamp" {
            message.set_field_by_name("seconds", Value::I64(1_764_000_000 + variant as i64));
            message.set_field_by_name("nanos", Value::I32([0, 120_000_000, 123_456][variant % 3]));
            return message;
        }
        for field in desc.fields() {
            if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic()) {
                let members: Vec<u32> = oneof.fields().map(|f| f.number()).collect();
                if members[variant % members.len()] != field.number() {
                    continue;
                }
            }
            if depth >= 4 && matches!(field.kind(), Kind::Message(_)) {
                continue;
            }
            let value = if field.is_map() {
                let entry = field.kind();
                let entry = entry.as_message().expect("a map's entry is a message");
                let value_kind = entry.map_entry_value_field().kind();
                let key = |n: usize| match entry.map_entry_key_field().kind() {
                    Kind::String => MapKey::String(format!("key {n}")),
                    Kind::Bool => MapKey::Bool(n == 1),
                    Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => MapKey::I64(n as i64),
                    Kind::Uint64 | Kind::Fixed64 => MapKey::U64(n as u64),
                    Kind::Uint32 | Kind::Fixed32 => MapKey::U32(n as u32),
                    _ => MapKey::I32(n as i32),
                };
                Value::Map(
                    (1..=2)
                        .map(|n| (key(n), single(&value_kind, variant + n, depth)))
                        .collect(),
                )
            } else if field.is_list() {
                Value::List(
                    (1..=2)
                        .map(|n| single(&field.kind(), variant + n, depth))
                        .collect(),
                )
            } else {
                single(&field.kind(), variant, depth)
            };
            message.set_field(&field, value);
        }
        message
    }

    /// One value of `kind`, not its default.
    fn single(kind: &Kind, variant: usize, depth: usize) -> Value {
        let n = variant as i64 + 1;
        match kind {
            Kind::Double => Value::F64([12.0, 0.25, -3.0][variant % 3]),
            Kind::Float => Value::F32(1.5),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(-7 * n as i32),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(-9_007_199_254_740_993 * n),
            Kind::Uint32 | Kind::Fixed32 => Value::U32(7 * n as u32),
            Kind::Uint64 | Kind::Fixed64 => Value::U64(18_000_000_000_000_000_000 + n as u64),
            Kind::Bool => Value::Bool(true),
            Kind::String => Value::String(format!("text {n} \"é\" \u{1F511}")),
            Kind::Bytes => Value::Bytes(Bytes::from_static(b"\x00\xff?>")),
            Kind::Enum(e) => {
                let named: Vec<i32> = e.values().map(|v| v.number()).filter(|&v| v != 0).collect();
                Value::EnumNumber(if named.is_empty() {
                    0
                } else {
                    named[variant % named.len()]
                })
            }
            Kind::Message(m) => Value::Message(filled(m, variant, depth + 1)),
        }
    }

    #[test]
    fn every_reply_is_written_as_proto3_json_exactly_as_reflection_writes_it() {
        let pool = routes::pool(DESCRIPTOR_SET).unwrap();
        let routes = routes::routes(&pool).unwrap();
        assert!(routes.len() > 30, "{} routes", routes.len());
        for route in &routes {
            let output = route.output();
            let samples = std::iter::once(DynamicMessage::new(output.clone()))
                .chain((0..3).map(|variant| filled(&output, variant, 0)));
            for reply in samples {
                let written =
                    crate::pb::v1::encoded_reply_json(route.grpc_path(), &reply.encode_to_vec())
                        .unwrap_or_else(|| panic!("{} has no unary method", route.grpc_path()))
                        .unwrap_or_else(|e| panic!("{}: {e}", route.grpc_path()));
                let written: serde_json::Value = serde_json::from_slice(&written).unwrap();
                let expected: serde_json::Value =
                    serde_json::from_slice(&json::to_bytes(&Reflected(&reply)).unwrap()).unwrap();
                assert_eq!(written, expected, "{}: {reply:?}", route.grpc_path());
            }
        }
    }
}
