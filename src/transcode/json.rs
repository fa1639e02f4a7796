//! REST's JSON: request messages built from the body, query, path and
//! headers, with errors that name the field; replies written compactly
//! with whole doubles as integers.

use prost_reflect::{DeserializeOptions, DynamicMessage, Kind};
use serde_json::{Map, Value};

use super::RestError;
use super::routes::HttpRoute;
use crate::api::number_to_json;

/// The query's name–value pairs, decoded as a form
/// (`application/x-www-form-urlencoded`: `+` is a space, then the
/// percent-escapes). Escapes that don't make UTF-8 are refused, naming
/// the parameter, rather than turned into U+FFFD as a lossy decoder
/// would, so a value is never silently other than what was sent (a path
/// parameter with bad UTF-8 is refused the same way).
fn query_pairs(query: &str) -> Result<Vec<(String, String)>, RestError> {
    let decode = |part: &str| {
        let spaced = part.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .map(std::borrow::Cow::into_owned)
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name).map_err(|_| {
                RestError::invalid(format!("a query parameter's name is not UTF-8: {name:?}"))
            })?;
            let value = decode(value)
                .map_err(|_| RestError::invalid(format!("query parameter {name} is not UTF-8")))?;
            Ok((name, value))
        })
        .collect()
}

/// Builds the request message from the body (when the route takes one),
/// the query string, the path variables and the header-bound fields (e.g.
/// `Idempotency-Key`).
pub fn request_message(
    route: &HttpRoute,
    path_params: &[(&str, &str)],
    query: &str,
    body: Option<&[u8]>,
    headers: &http::HeaderMap,
) -> Result<DynamicMessage, RestError> {
    let input = route.input();
    let mut fields = match body {
        // An empty body is no body; anything else must be a JSON object
        // (whitespace alone is not JSON, RFC 8259 §2).
        Some(bytes) if !bytes.is_empty() => match super::strict::parse(bytes) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(RestError::invalid("the request body must be a JSON object")),
            Err(e) => return Err(RestError::invalid(format!("malformed JSON body: {e}"))),
        },
        _ => Map::new(),
    };

    for (name, raw) in query_pairs(query)? {
        let field = input
            .get_field_by_name(&name)
            .filter(|f| !f.is_list() && !f.is_map())
            .ok_or_else(|| RestError::invalid(format!("unknown query parameter {name:?}")))?;
        let value = match field.kind() {
            Kind::String => Value::String(raw),
            Kind::Bool => match raw.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => {
                    return Err(RestError::invalid(format!(
                        "query parameter {name} must be true or false"
                    )));
                }
            },
            Kind::Int32
            | Kind::Sint32
            | Kind::Sfixed32
            | Kind::Int64
            | Kind::Sint64
            | Kind::Sfixed64
            | Kind::Uint32
            | Kind::Fixed32
            | Kind::Uint64
            | Kind::Fixed64 => {
                let n: i64 = raw.parse().map_err(|_| {
                    RestError::invalid(format!("query parameter {name} must be an integer"))
                })?;
                Value::from(n)
            }
            _ => {
                return Err(RestError::invalid(format!(
                    "query parameter {name} is not supported; send it in the body"
                )));
            }
        };
        if fields.insert(name.clone(), value).is_some() {
            return Err(RestError::invalid(format!("{name} is given twice")));
        }
    }

    for name in &route.path_params {
        let value = path_params
            .iter()
            .find_map(|(n, v)| (*n == name.as_str()).then_some(*v))
            .ok_or_else(|| RestError::invalid(format!("{name} is missing from the path")))?;
        if fields.contains_key(name) {
            return Err(RestError::invalid(format!(
                "{name} comes from the path; leave it out of the body and query"
            )));
        }
        fields.insert(name.clone(), Value::String(value.to_owned()));
    }

    for (name, header) in header_fields(route) {
        if fields.contains_key(name) {
            return Err(RestError::invalid(format!(
                "send {name} as the {header} header, not in the body or query"
            )));
        }
        if let Some(value) = headers.get(header) {
            let value = value.to_str().map_err(|_| {
                RestError::invalid(format!("the {header} header must be visible ASCII"))
            })?;
            fields.insert(name.to_owned(), Value::String(value.to_owned()));
        }
    }

    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(Value::Object(fields), &mut track);
    DynamicMessage::deserialize_with_options(input, de, &DeserializeOptions::new()).map_err(|e| {
        let path = track.path().to_string();
        if path == "." {
            RestError::invalid(format!("invalid request: {e}"))
        } else {
            RestError::invalid(format!("invalid field {path:?}: {e}"))
        }
    })
}

/// The fields of the route's request that travel in a header over REST,
/// with the header's name.
pub fn header_fields(route: &HttpRoute) -> impl Iterator<Item = (&'static str, &'static str)> {
    crate::api::rules::RULES
        .message(route.input().name())
        .into_iter()
        .flat_map(|m| m.fields.iter())
        .filter_map(|f| Some((f.field.name(), f.rules.header.as_deref()?)))
}

/// `value`'s JSON as REST writes it: compact, with whole doubles as
/// integers.
pub fn to_bytes<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out,
        WholeNumbers,
    ))?;
    Ok(out)
}

/// serde_json's compact output, except that a double holding a whole
/// number that a double represents exactly is written as an integer
/// (`12`, not `12.0`), as [`number_to_json`] does for `Struct` values.
/// serde_json writes a non-finite double as `null` without asking the
/// formatter; no reply carries one (the contract's one double field is a
/// measured latency).
struct WholeNumbers;

impl serde_json::ser::Formatter for WholeNumbers {
    fn write_f64<W: ?Sized + std::io::Write>(&mut self, w: &mut W, n: f64) -> std::io::Result<()> {
        match number_to_json(n) {
            Value::Number(n) if n.is_i64() => self.write_i64(w, n.as_i64().unwrap_or_default()),
            _ => serde_json::ser::CompactFormatter.write_f64(w, n),
        }
    }

    fn write_f32<W: ?Sized + std::io::Write>(&mut self, w: &mut W, n: f32) -> std::io::Result<()> {
        self.write_f64(w, f64::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::v1::VendorStatus;

    #[test]
    fn a_reply_prints_every_field_by_its_proto_name_and_whole_doubles_as_integers() {
        let text = |p50_latency_ms| {
            let status = VendorStatus {
                vendor: "native".into(),
                p50_latency_ms,
                ..Default::default()
            };
            String::from_utf8(to_bytes(&status).unwrap()).unwrap()
        };
        assert_eq!(
            text(Some(12.0)),
            r#"{"vendor":"native","status":"","supports":false,"p50_latency_ms":12,"mode":""}"#
        );
        assert!(text(Some(-3.0)).contains(r#""p50_latency_ms":-3,"#));
        assert!(text(Some(0.25)).contains(r#""p50_latency_ms":0.25,"#));
        // 2^53 and beyond are not exact integers in a double: left as doubles.
        assert!(
            text(Some(9_007_199_254_740_992.0)).contains(r#""p50_latency_ms":9007199254740992.0,"#)
        );
        // An unset optional field is left out.
        assert!(!text(None).contains("p50_latency_ms"));
    }

    #[test]
    fn a_query_decodes_as_a_form_and_refuses_escapes_that_are_not_utf8() {
        let pairs = |q: &str| query_pairs(q).map_err(|e| e.message);
        let owned = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            pairs("email=a%2Bb%40x.io&page_token=&&limit=5&q=two+words%20%C3%A9"),
            Ok(owned(&[
                ("email", "a+b@x.io"),
                ("page_token", ""),
                ("limit", "5"),
                ("q", "two words é"),
            ]))
        );
        assert_eq!(pairs("flag"), Ok(owned(&[("flag", "")])));
        // A U+FFFD that was sent is kept; one a lossy decoder would make is refused.
        assert_eq!(pairs("q=%EF%BF%BD"), Ok(owned(&[("q", "\u{fffd}")])));
        let err = pairs("email=%C0%80@x.io").unwrap_err();
        assert_eq!(err, "query parameter email is not UTF-8");
        let err = pairs("%FF=1").unwrap_err();
        assert!(
            err.contains("name is not UTF-8") && err.contains("%FF"),
            "{err}"
        );
    }
}
