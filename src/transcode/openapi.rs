//! An OpenAPI 3.1 document generated from the same route table and
//! message descriptors the transcoder serves.

use std::collections::BTreeMap;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use super::routes::HttpRoute;

/// The OpenAPI document for `routes`.
pub fn document(routes: &[HttpRoute]) -> Value {
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut schemas: BTreeMap<String, Value> = BTreeMap::new();
    for route in routes {
        let input = route.input();
        let output = route.output();
        collect_schemas(&output, &mut schemas);
        let mut parameters: Vec<Value> = route
            .path_params
            .iter()
            .map(|name| {
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
            })
            .collect();
        let mut op = Map::new();
        op.insert("operationId".into(), json!(route.operation_id()));
        op.insert("summary".into(), json!(route.rpc.full_name()));
        if route.body {
            collect_schemas(&input, &mut schemas);
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": schema_ref(&input)}}}),
            );
        } else {
            parameters.extend(
                input
                    .fields()
                    .filter(|f| !route.path_params.iter().any(|p| p == f.name()))
                    .map(|f| {
                        json!({"name": f.name(), "in": "query", "required": false,
                               "schema": field_schema(&f)})
                    }),
            );
        }
        if !parameters.is_empty() {
            op.insert("parameters".into(), Value::Array(parameters));
        }
        op.insert(
            "responses".into(),
            json!({
                "200": {"description": "OK", "content": {"application/json": {"schema": schema_ref(&output)}}},
                "default": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }),
        );
        paths
            .entry(route.template.clone())
            .or_default()
            .insert(route.method.as_str().to_lowercase(), Value::Object(op));
    }
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "request_id": {"type": ["string", "null"]}
                }
            }}
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": "authmux", "version": env!("CARGO_PKG_VERSION")},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}}
        },
        "security": [{"apiKey": []}],
        "paths": paths,
    })
}

fn schema_ref(m: &MessageDescriptor) -> Value {
    json!({"$ref": format!("#/components/schemas/{}", m.name())})
}

fn collect_schemas(m: &MessageDescriptor, out: &mut BTreeMap<String, Value>) {
    if out.contains_key(m.name()) || is_well_known(m) {
        return;
    }
    out.insert(m.name().to_owned(), Value::Null);
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in m.fields() {
        if let Kind::Message(inner) = f.kind() {
            collect_schemas(&inner, out);
        }
        if !f.supports_presence() || f.is_list() {
            required.push(json!(f.name()));
        }
        props.insert(f.name().to_owned(), field_schema(&f));
    }
    out.insert(
        m.name().to_owned(),
        json!({"type": "object", "properties": props, "required": required}),
    );
}

fn is_well_known(m: &MessageDescriptor) -> bool {
    m.package_name() == "google.protobuf"
}

fn field_schema(f: &FieldDescriptor) -> Value {
    let one = match f.kind() {
        Kind::String => json!({"type": "string"}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::Double | Kind::Float => json!({"type": "number"}),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 | Kind::Uint32 | Kind::Fixed32 => {
            json!({"type": "integer", "format": "int32"})
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            json!({"type": "string", "format": "int64"})
        }
        Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        Kind::Enum(_) => json!({"type": "string"}),
        Kind::Message(m) => match m.full_name() {
            "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
            "google.protobuf.Struct" => json!({"type": "object"}),
            _ => schema_ref(&m),
        },
    };
    if f.is_list() {
        json!({"type": "array", "items": one})
    } else {
        one
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::DESCRIPTOR_SET;
    use crate::transcode::routes::{pool, routes};

    #[test]
    fn document_lists_every_route_and_schema() {
        let pool = pool(DESCRIPTOR_SET).unwrap();
        let routes = routes(&pool).unwrap();
        let doc = document(&routes);
        assert_eq!(doc["openapi"], "3.1.0");
        for r in &routes {
            let method = r.method.as_str().to_lowercase();
            assert!(
                doc["paths"][&r.template][&method].is_object(),
                "{}",
                r.template
            );
        }
        let user = &doc["components"]["schemas"]["AuthUser"];
        assert_eq!(user["properties"]["created_at"]["format"], "date-time");
        assert_eq!(user["properties"]["metadata"]["type"], "object");
        let get = &doc["paths"]["/v1/auth/user/list"]["get"]["parameters"];
        assert!(get.as_array().unwrap().iter().any(|p| p["name"] == "limit"));
    }
}
