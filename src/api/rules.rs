//! The request rules of the contract, read from the options in `proto/`
//! (`google.api.field_behavior` REQUIRED, `authmux.v1.rules` and
//! `authmux.v1.message_rules`). The codec checks every request against them
//! on both transports, and the OpenAPI generator states them; neither keeps
//! a list of its own.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::LazyLock;

use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, MessageDescriptor, ReflectMessage, Value,
};
use regex::Regex;

use crate::domain::{Error, ErrorCode};
use crate::pb::v1 as pb;

/// The `google.api.FieldBehavior` number of REQUIRED.
const REQUIRED: i32 = 2;

/// The rules of one field.
#[derive(Debug, Clone)]
pub struct FieldCheck {
    /// The field.
    pub field: FieldDescriptor,
    /// Marked `google.api.field_behavior` REQUIRED.
    pub required: bool,
    /// Its `authmux.v1.rules`, all unset when it has none.
    pub rules: pb::FieldRules,
    pattern: Option<Pattern>,
}

/// The contract's pattern of visible text, with `*` (may be empty).
const VISIBLE: &str =
    r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]*$";

/// A field's pattern. The contract's pattern of visible text (the most
/// common one, on tokens of hundreds of bytes too) is checked with the
/// domain's own scan, which a test proves equal to the regex, character by
/// character.
#[derive(Debug, Clone)]
enum Pattern {
    Visible(Regex),
    Other(Regex),
}

impl Pattern {
    fn new(re: Regex) -> Pattern {
        match re.as_str() {
            VISIBLE => Pattern::Visible(re),
            _ => Pattern::Other(re),
        }
    }

    fn regex(&self) -> &Regex {
        match self {
            Pattern::Visible(re) | Pattern::Other(re) => re,
        }
    }

    fn is_match(&self, s: &str) -> bool {
        match self {
            Pattern::Visible(_) => crate::domain::text::is_visible(s),
            Pattern::Other(re) => re.is_match(s),
        }
    }
}

/// The rules of one request message.
#[derive(Debug, Clone)]
pub struct MessageCheck {
    /// The message.
    pub descriptor: MessageDescriptor,
    /// Fields with at least one rule, in declaration order.
    pub fields: Vec<FieldCheck>,
    /// Its `authmux.v1.message_rules`.
    pub rules: pb::MessageRules,
}

impl MessageCheck {
    /// The rules of the field named `name`, if it has any.
    pub fn field(&self, name: &str) -> Option<&FieldCheck> {
        self.fields.iter().find(|f| f.field.name() == name)
    }
}

/// The rules of every message of the contract.
#[derive(Debug, Default)]
pub struct Rules {
    by_message: HashMap<String, MessageCheck>,
}

/// The rules of the embedded contract.
pub static RULES: LazyLock<Rules> = LazyLock::new(|| {
    crate::transcode::routes::pool(crate::pb::DESCRIPTOR_SET)
        .and_then(|pool| Rules::from_pool(&pool))
        .expect("the embedded descriptor set carries valid rules")
});

impl Rules {
    /// Reads the rules of every `authmux.v1` message in `pool`. A pattern
    /// that does not compile is an error.
    pub fn from_pool(pool: &DescriptorPool) -> Result<Rules, String> {
        let behavior = pool.get_extension_by_name("google.api.field_behavior");
        let field_rules = pool.get_extension_by_name("authmux.v1.rules");
        let message_rules = pool.get_extension_by_name("authmux.v1.message_rules");
        let mut by_message = HashMap::new();
        for message in pool
            .all_messages()
            .filter(|m| m.package_name() == crate::transcode::routes::PACKAGE)
        {
            let mut check = MessageCheck {
                descriptor: message.clone(),
                fields: Vec::new(),
                rules: pb::MessageRules::default(),
            };
            if let Some(ext) = &message_rules {
                let options = message.options();
                if options.has_extension(ext) {
                    check.rules = decode_option(&options.get_extension(ext), message.name())?;
                }
            }
            for field in message.fields() {
                let options = field.options();
                let required = behavior.as_ref().is_some_and(|ext| {
                    options.has_extension(ext)
                        && matches!(&*options.get_extension(ext), Value::List(items)
                            if items.iter().any(|v| v.as_enum_number() == Some(REQUIRED)))
                });
                let rules: pb::FieldRules = match &field_rules {
                    Some(ext) if options.has_extension(ext) => {
                        decode_option(&options.get_extension(ext), field.full_name())?
                    }
                    _ => pb::FieldRules::default(),
                };
                if !required && rules == pb::FieldRules::default() {
                    continue;
                }
                let pattern = rules
                    .pattern
                    .as_deref()
                    .map(|p| {
                        Regex::new(p)
                            .map(Pattern::new)
                            .map_err(|e| format!("{}: pattern {p:?}: {e}", field.full_name()))
                    })
                    .transpose()?;
                check.fields.push(FieldCheck {
                    field,
                    required,
                    rules,
                    pattern,
                });
            }
            if !check.fields.is_empty() || check.rules != pb::MessageRules::default() {
                by_message.insert(message.name().to_owned(), check);
            }
        }
        Ok(Rules { by_message })
    }

    /// The rules of the `authmux.v1` message named `name` (e.g.
    /// `CreateUserRequest`), if it has any.
    pub fn message(&self, name: &str) -> Option<&MessageCheck> {
        self.by_message.get(name)
    }

    /// Checks the encoded request `bytes` of message type `M`.
    pub fn check_encoded<M: prost::Name>(&self, bytes: bytes::Bytes) -> Result<(), Error> {
        let Some(check) = self.of::<M>() else {
            return Ok(());
        };
        let message = DynamicMessage::decode(check.descriptor.clone(), bytes).map_err(|e| {
            Error::invalid(format!("the request message could not be decoded: {e}"))
        })?;
        check.check(&message)
    }

    /// Checks `message`, a request of message type `M`.
    pub fn check_message<M: prost::Name>(&self, message: &DynamicMessage) -> Result<(), Error> {
        self.of::<M>().map_or(Ok(()), |check| check.check(message))
    }

    /// The rules of message type `M`, if it has any.
    fn of<M: prost::Name>(&self) -> Option<&MessageCheck> {
        if M::PACKAGE != crate::transcode::routes::PACKAGE {
            return None;
        }
        self.by_message.get(M::NAME)
    }
}

fn decode_option<T: prost::Message + Default>(value: &Value, at: &str) -> Result<T, String> {
    value
        .as_message()
        .ok_or_else(|| format!("{at}: the option is not a message"))?
        .transcode_to::<T>()
        .map_err(|e| format!("{at}: {e}"))
}

/// The message's value of `field` when it is given: set (for fields with
/// presence) or not the default (for plain proto3 fields).
fn given<'a>(
    message: &'a DynamicMessage,
    field: &FieldDescriptor,
) -> Option<std::borrow::Cow<'a, Value>> {
    message.has_field(field).then(|| message.get_field(field))
}

fn given_by_name(message: &DynamicMessage, name: &str) -> bool {
    message
        .descriptor()
        .get_field_by_name(name)
        .is_some_and(|f| message.has_field(&f))
}

impl MessageCheck {
    /// Checks `message` against every rule; the error names the field.
    pub fn check(&self, message: &DynamicMessage) -> Result<(), Error> {
        for f in &self.fields {
            f.check(message)?;
        }
        for d in &self.rules.dependencies {
            let triggered = message
                .descriptor()
                .get_field_by_name(&d.field)
                .and_then(|f| given(message, &f).map(|v| v.as_str() == Some(d.equals.as_str())))
                .unwrap_or(false);
            if !triggered {
                continue;
            }
            if let Some(missing) = d.requires.iter().find(|r| !given_by_name(message, r)) {
                let code = ErrorCode::parse(&d.code).unwrap_or(ErrorCode::InvalidArgument);
                return Err(Error::new(
                    code,
                    format!("{missing} is required when {} is {:?}", d.field, d.equals),
                ));
            }
        }
        if !self.rules.any_of.is_empty()
            && !self.rules.any_of.iter().any(|n| given_by_name(message, n))
        {
            return Err(Error::invalid(format!(
                "one of {} is required",
                self.rules.any_of.join(", ")
            )));
        }
        Ok(())
    }
}

impl FieldCheck {
    fn check(&self, message: &DynamicMessage) -> Result<(), Error> {
        let name = self.field.name();
        let Some(value) = given(message, &self.field) else {
            if self.required {
                return Err(Error::invalid(format!("{name} is required")));
            }
            return Ok(());
        };
        match &*value {
            Value::String(s) => self.check_string(name, s),
            Value::List(items) => {
                let n = items.len() as u64;
                if let Some(max) = self.rules.max_len
                    && n > u64::from(max)
                {
                    return Err(Error::invalid(format!(
                        "{name} must have at most {max} items"
                    )));
                }
                if let Some(min) = self.rules.min_len
                    && n < u64::from(min)
                {
                    return Err(Error::invalid(format!(
                        "{name} must have at least {min} items"
                    )));
                }
                for (i, item) in items.iter().enumerate() {
                    if let Some(s) = item.as_str() {
                        self.check_text(&format!("{name}[{i}]"), s)?;
                    }
                }
                Ok(())
            }
            Value::I32(n) => self.check_number(name, i64::from(*n)),
            Value::I64(n) => self.check_number(name, *n),
            Value::U32(n) => self.check_number(name, i64::from(*n)),
            _ => Ok(()),
        }
    }

    fn check_string(&self, name: &str, s: &str) -> Result<(), Error> {
        let chars = s.chars().count() as u64;
        if let Some(max) = self.rules.max_len
            && chars > u64::from(max)
        {
            return Err(Error::invalid(format!(
                "{name} must be at most {max} characters"
            )));
        }
        if let Some(min) = self.rules.min_len
            && chars < u64::from(min)
        {
            return Err(Error::invalid(format!(
                "{name} must be at least {min} characters"
            )));
        }
        self.check_text(name, s)
    }

    /// The rules on a text's value (for a list, on each item): allowed
    /// values, pattern and format.
    fn check_text(&self, name: &str, s: &str) -> Result<(), Error> {
        if !self.rules.one_of.is_empty() && !self.rules.one_of.iter().any(|v| v == s) {
            return Err(Error::invalid(format!(
                "{name} {s:?} is not one of {}",
                self.rules.one_of.join(", ")
            )));
        }
        self.check_pattern(name, s)?;
        match self.rules.format.as_deref() {
            Some("email") => crate::domain::normalize_email(s)
                .and_then(|e| crate::domain::text::email_key(&e))
                .map(drop),
            Some("uri") => match url::Url::parse(s) {
                Ok(_) => Ok(()),
                Err(e) => Err(Error::invalid(format!(
                    "{name} {s:?} is not an absolute URI: {e}"
                ))),
            },
            Some("ip") => s.parse::<IpAddr>().map(drop).map_err(|_| {
                Error::invalid(format!("{name} {s:?} is not an IPv4 or IPv6 address"))
            }),
            _ => Ok(()),
        }
    }

    fn check_pattern(&self, name: &str, s: &str) -> Result<(), Error> {
        match &self.pattern {
            Some(p) if !p.is_match(s) => Err(Error::invalid(format!(
                "{name} must match {}",
                p.regex().as_str()
            ))),
            _ => Ok(()),
        }
    }

    fn check_number(&self, name: &str, n: i64) -> Result<(), Error> {
        let (min, max) = (self.rules.minimum, self.rules.maximum);
        if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
            let range = match (min, max) {
                (Some(a), Some(b)) => format!("between {a} and {b}"),
                (Some(a), None) => format!("at least {a}"),
                (None, Some(b)) => format!("at most {b}"),
                (None, None) => String::new(),
            };
            return Err(Error::invalid(format!("{name} must be {range}, got {n}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::DESCRIPTOR_SET;
    use crate::transcode::routes::pool;

    fn message(name: &str, json: serde_json::Value) -> DynamicMessage {
        let pool = pool(DESCRIPTOR_SET).unwrap();
        let desc = pool
            .get_message_by_name(&format!("authmux.v1.{name}"))
            .unwrap();
        DynamicMessage::deserialize(desc, json).unwrap()
    }

    fn check(name: &str, json: serde_json::Value) -> Result<(), String> {
        RULES
            .message(name)
            .unwrap()
            .check(&message(name, json))
            .map_err(|e| e.message)
    }

    #[test]
    fn every_rule_in_the_contract_compiles() {
        assert!(RULES.message("CreateUserRequest").is_some());
        assert!(RULES.message("AuthUser").is_none());
    }

    #[test]
    fn required_fields_and_formats() {
        assert_eq!(
            check("CreateUserRequest", serde_json::json!({})).unwrap_err(),
            "email is required"
        );
        assert!(
            check(
                "CreateUserRequest",
                serde_json::json!({"email": "a@example.com"})
            )
            .is_ok()
        );
        assert!(check("CreateUserRequest", serde_json::json!({"email": "nope"})).is_err());
        let short = check(
            "CreateUserRequest",
            serde_json::json!({"email": "a@example.com", "password": "short"}),
        );
        assert!(short.unwrap_err().contains("at least 8"));
        assert!(
            check(
                "CreateUserRequest",
                serde_json::json!({"email": "a@example.com", "vendor": "acme"})
            )
            .unwrap_err()
            .contains("not one of")
        );
    }

    #[test]
    fn numbers_patterns_and_lists() {
        assert!(check("ListUsersRequest", serde_json::json!({"limit": 200})).is_ok());
        assert_eq!(
            check("ListUsersRequest", serde_json::json!({"limit": 0})).unwrap_err(),
            "limit must be between 1 and 200, got 0"
        );
        assert!(
            check(
                "GrantConsentRequest",
                serde_json::json!({"user_id": "u", "category": "Marketing"})
            )
            .unwrap_err()
            .contains("category must match")
        );
        let many: Vec<String> = (0..21).map(|i| format!("s{i}")).collect();
        assert!(
            check(
                "StartOAuthRequest",
                serde_json::json!({"provider": "p", "redirect_uri": "https://a.example/cb", "scopes": many})
            )
            .unwrap_err()
            .contains("at most 20 items")
        );
        assert!(
            check(
                "CreateSessionRequest",
                serde_json::json!({"user_id": "u", "client_ip": "::1"})
            )
            .is_ok()
        );
        assert!(
            check(
                "CreateSessionRequest",
                serde_json::json!({"user_id": "u", "client_ip": "1.2.3"})
            )
            .is_err()
        );
    }

    #[test]
    fn message_rules() {
        let e = RULES
            .message("CreateUserRequest")
            .unwrap()
            .check(&message(
                "CreateUserRequest",
                serde_json::json!({"email": "a@example.com", "mode": "byok"}),
            ))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::AuthVendorRequired);
        assert!(
            check(
                "CreateSessionRequest",
                serde_json::json!({"user_id": "u", "method": "password"})
            )
            .unwrap_err()
            .contains("password is required when method is \"password\"")
        );
        assert!(check("CompleteOAuthRequest", serde_json::json!({"state": "s"})).is_err());
        assert!(
            check(
                "CompleteOAuthRequest",
                serde_json::json!({"state": "s", "error": "access_denied"})
            )
            .is_ok()
        );
    }

    /// The pattern of visible text in the contract refuses exactly the
    /// characters the domain's own check refuses, so the rules may check it
    /// with that scan: on every character, alone and inside ASCII text.
    #[test]
    fn visible_text_pattern_matches_the_domain_check() {
        for (message, field) in [
            ("GrantConsentRequest", "source"),
            ("VerifySessionRequest", "session_id"),
        ] {
            let check = RULES.message(message).unwrap().field(field).unwrap();
            assert!(
                matches!(check.pattern, Some(Pattern::Visible(_))),
                "{message}.{field} takes the fast path"
            );
        }
        let re = Regex::new(VISIBLE).unwrap();
        for c in (0u32..0x11_0000).filter_map(char::from_u32) {
            for s in [c.to_string(), format!("eyJ{c}.x")] {
                assert_eq!(
                    re.is_match(&s),
                    crate::domain::text::is_visible(&s),
                    "U+{:04X}",
                    c as u32
                );
            }
        }
        assert!(crate::domain::text::is_visible(""));
    }
}
