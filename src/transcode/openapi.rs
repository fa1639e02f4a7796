//! An OpenAPI 3.1 document generated from the same route table, message
//! descriptors and request rules ([`crate::api::rules`]) the server runs
//! on, so it states exactly what the server accepts: required fields,
//! patterns, lengths, ranges, formats, no unknown properties, the fields
//! that travel in headers, the error envelope of every status an operation
//! answers with, and links from the operations that create a resource to
//! those that use it.

use std::collections::BTreeMap;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use super::routes::HttpRoute;
use crate::api::rules::{FieldCheck, MessageCheck, RULES};
use crate::domain::ErrorCode;

/// The OpenAPI document for `routes`.
pub fn document(routes: &[HttpRoute]) -> Value {
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut schemas: BTreeMap<String, Value> = BTreeMap::new();
    for route in routes {
        let input = route.input();
        let output = route.output();
        let check = RULES.message(input.name());
        collect_schemas(&output, &mut schemas);

        let headers: Vec<(&str, &str)> = super::json::header_fields(route).collect();
        let in_path = |f: &FieldDescriptor| route.path_params.iter().any(|p| p == f.name());
        let in_header = |f: &FieldDescriptor| headers.iter().any(|(n, _)| *n == f.name());

        let mut parameters: Vec<Value> = Vec::new();
        for name in &route.path_params {
            let Some(field) = input.get_field_by_name(name) else {
                continue;
            };
            parameters.push(json!({
                "name": name, "in": "path", "required": true,
                "schema": field_schema(&field, rule(check, name), false),
            }));
        }
        for (name, header) in &headers {
            if let Some(field) = input.get_field_by_name(name) {
                parameters.push(json!({
                    "name": header, "in": "header", "required": false,
                    "schema": field_schema(&field, rule(check, name), false),
                }));
            }
        }

        let mut op = Map::new();
        op.insert("operationId".into(), json!(route.operation_id()));
        op.insert("summary".into(), json!(route.rpc.full_name()));
        let fields = input.fields().filter(|f| !in_path(f) && !in_header(f));
        if route.body {
            let (schema, required) = body_schema(check, fields);
            schemas.insert(input.name().to_owned(), schema);
            op.insert(
                "requestBody".into(),
                json!({"required": required,
                       "content": {"application/json": {"schema": schema_ref(&input)}}}),
            );
        } else {
            for f in fields {
                let required = rule(check, f.name()).is_some_and(|c| c.required);
                parameters.push(json!({
                    "name": f.name(), "in": "query", "required": required,
                    "schema": field_schema(&f, rule(check, f.name()), !required),
                }));
            }
        }
        if !route.path_params.is_empty() {
            let description = format!(
                "{} come from the path and are refused in the body or query.",
                route.path_params.join(", ")
            );
            op.insert("description".into(), json!(description));
        }
        if !parameters.is_empty() {
            op.insert("parameters".into(), Value::Array(parameters));
        }
        let mut responses = Map::new();
        responses.insert(
            "200".into(),
            json!({"description": "OK",
                   "content": {"application/json": {"schema": schema_ref(&output)}}}),
        );
        for status in error_statuses(route, !headers.is_empty()) {
            responses.insert(
                status.to_string(),
                json!({"description": status_text(status),
                       "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
            );
        }
        op.insert("responses".into(), Value::Object(responses));
        paths
            .entry(route.template.clone())
            .or_default()
            .insert(route.method.as_str().to_lowercase(), Value::Object(op));
    }
    add_links(routes, &mut paths);
    schemas.insert("Error".into(), error_schema());
    schemas.insert("JsonValue".into(), json_value_schema());
    json!({
        "openapi": "3.1.0",
        "info": {"title": "authmux", "version": env!("CARGO_PKG_VERSION")},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "An API key: `Authorization: Bearer amx_…`"}}
        },
        "security": [{"apiKey": []}],
        "paths": paths,
    })
}

fn rule<'a>(check: Option<&'a MessageCheck>, field: &str) -> Option<&'a FieldCheck> {
    check.and_then(|c| c.field(field))
}

/// The REST body of a request message: its fields but those bound to the
/// path or a header, no others, with the message's cross-field rules.
/// Also whether a body is required (it is when a field in it is).
fn body_schema(
    check: Option<&MessageCheck>,
    fields: impl Iterator<Item = FieldDescriptor>,
) -> (Value, bool) {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in fields {
        let c = rule(check, f.name());
        let is_required = c.is_some_and(|c| c.required);
        if is_required {
            required.push(json!(f.name()));
        }
        props.insert(f.name().to_owned(), field_schema(&f, c, !is_required));
    }
    let mut schema = json!({
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    });
    let given = |name: &str| {
        let mut s = json!({"required": [name], "properties": {}});
        s["properties"][name] = json!({"not": {"type": "null"}});
        s
    };
    if let Some(rules) = check.map(|c| &c.rules) {
        let mut all_of = Vec::new();
        for d in &rules.dependencies {
            let mut when = json!({"required": [d.field], "properties": {}});
            when["properties"][&d.field] = json!({"const": d.equals});
            let then: Vec<Value> = d.requires.iter().map(|r| given(r)).collect();
            all_of.push(json!({"if": when, "then": {"allOf": then}}));
        }
        if !rules.any_of.is_empty() {
            let any: Vec<Value> = rules.any_of.iter().map(|r| given(r)).collect();
            all_of.push(json!({"anyOf": any}));
        }
        if !all_of.is_empty() {
            schema["allOf"] = Value::Array(all_of);
        }
    }
    (schema, !required.is_empty())
}

/// The error statuses an operation answers with: every call can be
/// malformed (400), unauthenticated (401), miss what it names (404: a
/// user, session, provider or capability), be limited (429) or shed
/// (503); a body can be too large (413); calls that take an idempotency
/// key can meet it in use (409) or reused (422); calls on users, sessions,
/// sign-in and exports can find the vendor unconfigured (409) or failing
/// (502); webhook calls can meet the project's endpoint limit (409).
fn error_statuses(route: &HttpRoute, idempotent: bool) -> Vec<u16> {
    let mut out = vec![400, 401, 404, 429, 503];
    if route.body {
        out.push(413);
    }
    if idempotent {
        out.extend([409, 422]);
    }
    if matches!(
        route.rpc.parent_service().name(),
        "UserService" | "SessionService" | "OAuthService" | "PrivacyService"
    ) {
        out.extend([409, 502]);
    }
    if route.rpc.parent_service().name() == "WebhookService" {
        out.push(409);
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn status_text(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

fn error_schema() -> Value {
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": codes},
                "message": {"type": "string"},
                "request_id": {"type": ["string", "null"]}
            }
        }}
    })
}

/// Any JSON value a `google.protobuf.Struct` holds: numbers are doubles,
/// and integers beyond ±2^53 would not come back as they were sent.
fn json_value_schema() -> Value {
    let limit = crate::domain::EXACT_INTEGERS;
    let this = json!({"$ref": "#/components/schemas/JsonValue"});
    json!({"anyOf": [
        {"type": "string"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "number", "exclusiveMinimum": -limit, "exclusiveMaximum": limit},
        {"type": "array", "items": this},
        {"type": "object", "additionalProperties": this},
    ]})
}

/// Links from each operation to those whose path parameters its reply (or
/// its own request) supplies, for clients and stateful testing.
fn add_links(routes: &[HttpRoute], paths: &mut BTreeMap<String, Map<String, Value>>) {
    for a in routes {
        let output = a.output();
        let mut links = Map::new();
        for b in routes.iter().filter(|b| !b.path_params.is_empty()) {
            if b.operation_id() == a.operation_id() {
                continue;
            }
            let mut params = Map::new();
            let mut from_reply = false;
            for p in &b.path_params {
                let source = if let Some(pointer) = reply_pointer(&output, p) {
                    from_reply = true;
                    pointer
                } else if a.path_params.contains(p) {
                    format!("$request.path.{p}")
                } else if a.body && a.input().get_field_by_name(p).is_some() {
                    format!("$request.body#/{p}")
                } else {
                    params.clear();
                    break;
                };
                params.insert(format!("path.{p}"), json!(source));
            }
            let shares_path = b.path_params.iter().any(|p| a.path_params.contains(p));
            if params.len() == b.path_params.len() && (from_reply || shares_path) {
                links.insert(
                    b.operation_id(),
                    json!({"operationId": b.operation_id(), "parameters": params}),
                );
            }
        }
        if links.is_empty() {
            continue;
        }
        if let Some(Value::Object(op)) = paths
            .get_mut(&a.template)
            .and_then(|p| p.get_mut(&a.method.as_str().to_lowercase()))
            && let Some(ok) = op
                .get_mut("responses")
                .and_then(|r| r.get_mut("200"))
                .and_then(Value::as_object_mut)
        {
            ok.insert("links".into(), Value::Object(links));
        }
    }
}

/// Where a string field named `name` sits in a reply: at the top, or one
/// message down (`CompleteOAuthReply.user.user_id`).
fn reply_pointer(output: &MessageDescriptor, name: &str) -> Option<String> {
    // Only fields every reply carries: an optional one may be absent.
    let is_string =
        |f: &FieldDescriptor| f.kind() == Kind::String && !f.is_list() && !f.supports_presence();
    if output
        .get_field_by_name(name)
        .is_some_and(|f| is_string(&f))
    {
        return Some(format!("$response.body#/{name}"));
    }
    output.fields().find_map(|f| match f.kind() {
        Kind::Message(m) if !f.is_list() => m
            .get_field_by_name(name)
            .filter(is_string)
            .map(|_| format!("$response.body#/{}/{name}", f.name())),
        _ => None,
    })
}

fn schema_ref(m: &MessageDescriptor) -> Value {
    json!({"$ref": format!("#/components/schemas/{}", m.name())})
}

/// The schemas of a reply message and the messages inside it.
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
        let always = !f.supports_presence() || f.is_list();
        if always {
            required.push(json!(f.name()));
        }
        props.insert(f.name().to_owned(), field_schema(&f, None, !always));
    }
    out.insert(
        m.name().to_owned(),
        json!({"type": "object", "properties": props, "required": required}),
    );
}

fn is_well_known(m: &MessageDescriptor) -> bool {
    m.package_name() == "google.protobuf"
}

/// A field's schema with its rules; `nullable` adds JSON `null`, which the
/// proto3 JSON mapping reads as "not given".
fn field_schema(f: &FieldDescriptor, check: Option<&FieldCheck>, nullable: bool) -> Value {
    let mut one = kind_schema(f);
    if let Some(c) = check {
        apply_item_rules(&mut one, c, f);
    }
    let schema = if f.is_list() {
        let mut s = json!({"type": "array", "items": one});
        if let Some(c) = check {
            if let Some(n) = c.rules.min_len {
                s["minItems"] = json!(n);
            }
            if let Some(n) = c.rules.max_len {
                s["maxItems"] = json!(n);
            }
        }
        s
    } else {
        one
    };
    if nullable { with_null(schema) } else { schema }
}

fn kind_schema(f: &FieldDescriptor) -> Value {
    match f.kind() {
        Kind::String => json!({"type": "string"}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::Double | Kind::Float => json!({"type": "number"}),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({"type": "integer", "format": "int32", "minimum": i32::MIN, "maximum": i32::MAX})
        }
        Kind::Uint32 | Kind::Fixed32 => {
            json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": u32::MAX})
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            json!({"type": "string", "format": "int64"})
        }
        Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        Kind::Enum(_) => json!({"type": "string"}),
        Kind::Message(m) => match m.full_name() {
            "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
            "google.protobuf.Struct" => json!({
                "type": "object",
                "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
                "description": format!(
                    "A JSON object of at most {} bytes, nested at most {} levels.",
                    crate::domain::MAX_METADATA_BYTES,
                    crate::domain::MAX_METADATA_DEPTH
                ),
            }),
            _ => schema_ref(&m),
        },
    }
}

/// The rules that apply to one value (each item of a repeated field).
fn apply_item_rules(schema: &mut Value, c: &FieldCheck, f: &FieldDescriptor) {
    let r = &c.rules;
    if f.kind() == Kind::String {
        if !f.is_list() {
            // A plain proto3 string that is required can't be empty: ""
            // is how proto3 says "not given".
            let min = r
                .min_len
                .or((c.required && !f.supports_presence()).then_some(1));
            if let Some(n) = min {
                schema["minLength"] = json!(n);
            }
            if let Some(n) = r.max_len {
                schema["maxLength"] = json!(n);
            }
        }
        if let Some(p) = &r.pattern {
            schema["pattern"] = json!(p);
        }
        match r.format.as_deref() {
            Some("ip") => {
                *schema =
                    json!({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]});
            }
            Some(format) => schema["format"] = json!(format),
            None => {}
        }
        if !r.one_of.is_empty() {
            schema["enum"] = json!(r.one_of);
        }
    }
    if let Some(n) = r.minimum {
        schema["minimum"] = json!(n);
    }
    if let Some(n) = r.maximum {
        schema["maximum"] = json!(n);
    }
}

fn with_null(mut schema: Value) -> Value {
    if let Some(values) = schema.get_mut("enum").and_then(Value::as_array_mut) {
        values.push(Value::Null);
    }
    match schema.get("type").cloned() {
        Some(Value::String(t)) => {
            schema["type"] = json!([t, "null"]);
            schema
        }
        _ => json!({"anyOf": [schema, {"type": "null"}]}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::DESCRIPTOR_SET;
    use crate::transcode::routes::{pool, routes};

    fn doc() -> (Vec<HttpRoute>, Value) {
        let pool = pool(DESCRIPTOR_SET).unwrap();
        let routes = routes(&pool).unwrap();
        let doc = document(&routes);
        (routes, doc)
    }

    #[test]
    fn document_lists_every_route_and_schema() {
        let (routes, doc) = doc();
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
        let get = &doc["paths"]["/v1/auth/user/list"]["get"]["parameters"];
        assert!(get.as_array().unwrap().iter().any(|p| p["name"] == "limit"));
    }

    #[test]
    fn request_rules_are_stated() {
        let (_, doc) = doc();
        let create = &doc["components"]["schemas"]["CreateUserRequest"];
        assert_eq!(create["required"], json!(["email"]));
        assert_eq!(create["additionalProperties"], false);
        assert_eq!(create["properties"]["email"]["format"], "email");
        assert_eq!(create["properties"]["password"]["minLength"], 8);
        assert!(create["properties"].get("idempotency_key").is_none());
        let params = doc["paths"]["/v1/auth/user/list"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .clone();
        let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!(limit["schema"]["minimum"], 1);
        assert_eq!(limit["schema"]["maximum"], 200);
        let grant = &doc["paths"]["/v1/auth/consent/grant/{user_id}"]["post"];
        let headers: Vec<_> = grant["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "header")
            .map(|p| p["name"].clone())
            .collect();
        assert_eq!(headers, vec![json!("Idempotency-Key")]);
        let body = &doc["components"]["schemas"]["GrantConsentRequest"];
        assert!(body["properties"].get("user_id").is_none());
        assert_eq!(
            body["properties"]["category"]["pattern"],
            "^[a-z0-9][a-z0-9_.:-]*$"
        );
        for status in ["400", "401", "404", "409", "413", "422", "429"] {
            assert_eq!(
                grant["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/Error",
                "{status}"
            );
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["apiKey"]["scheme"],
            "bearer"
        );
    }

    #[test]
    fn created_resources_link_to_their_uses() {
        let (_, doc) = doc();
        let links = &doc["paths"]["/v1/auth/user/create"]["post"]["responses"]["200"]["links"];
        assert_eq!(
            links["auth.user.get"]["parameters"]["path.user_id"],
            "$response.body#/user_id"
        );
        let grant =
            &doc["paths"]["/v1/auth/consent/grant/{user_id}"]["post"]["responses"]["200"]["links"];
        assert_eq!(
            grant["auth.consent.check"]["parameters"]["path.category"],
            "$request.body#/category"
        );
    }
}
