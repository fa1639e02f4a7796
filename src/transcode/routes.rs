//! The REST route table, read from the `google.api.http` options of the
//! compiled descriptors: the only place paths are written is `proto/`.

use http::Method;
use prost_reflect::{DescriptorPool, MessageDescriptor, MethodDescriptor, Value};

/// The package whose services are exposed over REST.
pub const PACKAGE: &str = "authmux.v1";

/// One RPC with its REST binding.
#[derive(Clone, Debug)]
pub struct HttpRoute {
    /// The HTTP method.
    pub method: Method,
    /// The path template, e.g. `/v1/auth/user/get/{user_id}`.
    pub template: String,
    /// Field names bound from the path, in order.
    pub path_params: Vec<String>,
    /// Whether the whole request message comes from the body (`body: "*"`).
    pub body: bool,
    /// The gRPC path, e.g. `/authmux.v1.UserService/GetUser`.
    grpc_path: String,
    /// Whether this is the RPC's first binding (others come from
    /// `additional_bindings`).
    pub primary: bool,
    /// The RPC.
    pub rpc: MethodDescriptor,
}

impl HttpRoute {
    /// The gRPC path, e.g. `/authmux.v1.UserService/GetUser`.
    pub fn grpc_path(&self) -> &str {
        &self.grpc_path
    }

    /// The request message.
    pub fn input(&self) -> MessageDescriptor {
        self.rpc.input()
    }

    /// The reply message.
    pub fn output(&self) -> MessageDescriptor {
        self.rpc.output()
    }

    /// The OpenAPI operation id: the capability, with the method added for
    /// an additional binding.
    pub fn operation_id(&self) -> String {
        if self.primary {
            self.capability()
        } else {
            format!(
                "{}.{}",
                self.capability(),
                self.method.as_str().to_lowercase()
            )
        }
    }

    /// The capability id: the literal path segments after `/v1/`, joined
    /// by dots (`/v1/auth/user/get/{user_id}` → `auth.user.get`).
    pub fn capability(&self) -> String {
        self.template
            .trim_start_matches("/v1/")
            .split('/')
            .take_while(|s| !s.starts_with('{'))
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// Decodes the embedded descriptor set.
pub fn pool(descriptor_set: &[u8]) -> Result<DescriptorPool, String> {
    DescriptorPool::decode(descriptor_set).map_err(|e| format!("descriptor set: {e}"))
}

/// Every annotated RPC of [`PACKAGE`]. An RPC without a binding, or a
/// template this transcoder can't serve, is an error at start-up.
pub fn routes(pool: &DescriptorPool) -> Result<Vec<HttpRoute>, String> {
    let ext = pool
        .get_extension_by_name("google.api.http")
        .ok_or("the descriptor set lacks the google.api.http extension")?;
    let mut out = Vec::new();
    for service in pool.services().filter(|s| s.package_name() == PACKAGE) {
        for rpc in service.methods() {
            let options = rpc.options();
            if !options.has_extension(&ext) {
                return Err(format!("{} has no google.api.http option", rpc.full_name()));
            }
            let rule = match options.get_extension(&ext).as_ref() {
                Value::Message(m) => m.clone(),
                _ => return Err(format!("{}: malformed google.api.http", rpc.full_name())),
            };
            let grpc_path = format!("/{}/{}", service.full_name(), rpc.name());
            out.push(binding(&rule, &rpc, &grpc_path, true)?);
            if let Some(Value::List(more)) =
                rule.get_field_by_name("additional_bindings").as_deref()
            {
                for extra in more {
                    let Value::Message(extra) = extra else {
                        return Err(format!("{}: malformed additional binding", rpc.full_name()));
                    };
                    out.push(binding(extra, &rpc, &grpc_path, false)?);
                }
            }
        }
    }
    Ok(out)
}

/// One HTTP binding of an RPC.
fn binding(
    rule: &prost_reflect::DynamicMessage,
    rpc: &MethodDescriptor,
    grpc_path: &str,
    primary: bool,
) -> Result<HttpRoute, String> {
    let string_field = |name: &str| match rule.get_field_by_name(name).as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let (method, template) = [
        (Method::GET, "get"),
        (Method::PUT, "put"),
        (Method::POST, "post"),
        (Method::DELETE, "delete"),
        (Method::PATCH, "patch"),
    ]
    .into_iter()
    .find(|(_, name)| rule.has_field_by_name(name))
    .map(|(m, name)| (m, string_field(name)))
    .ok_or_else(|| format!("{}: no HTTP method in google.api.http", rpc.full_name()))?;
    let body = match string_field("body").as_str() {
        "" => false,
        "*" => true,
        other => {
            return Err(format!(
                "{}: body {other:?} is not supported (use \"*\")",
                rpc.full_name()
            ));
        }
    };
    let path_params =
        parse_template(&template, &rpc.input()).map_err(|e| format!("{}: {e}", rpc.full_name()))?;
    Ok(HttpRoute {
        method,
        grpc_path: grpc_path.to_owned(),
        template,
        path_params,
        body,
        primary,
        rpc: rpc.clone(),
    })
}

/// The variables of a template; each must be `{field}` naming a field of
/// the request message.
fn parse_template(template: &str, input: &MessageDescriptor) -> Result<Vec<String>, String> {
    if !template.starts_with('/') {
        return Err(format!("path {template:?} must start with '/'"));
    }
    let mut params = Vec::new();
    for segment in template.split('/').skip(1) {
        if let Some(inner) = segment.strip_prefix('{') {
            let name = inner
                .strip_suffix('}')
                .filter(|n| !n.is_empty() && !n.contains(['=', '.', '*']))
                .ok_or_else(|| format!("unsupported path segment {segment:?}"))?;
            if input.get_field_by_name(name).is_none() {
                return Err(format!("path variable {name:?} is not a request field"));
            }
            params.push(name.to_owned());
        } else if segment.is_empty() || segment.contains(['{', '}', '*']) {
            return Err(format!("unsupported path segment {segment:?}"));
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CAPABILITIES;
    use crate::pb::DESCRIPTOR_SET;

    #[test]
    fn every_rpc_is_bound_and_capabilities_match() {
        let pool = pool(DESCRIPTOR_SET).unwrap();
        let routes = routes(&pool).unwrap();
        let rpc_count: usize = pool
            .services()
            .filter(|s| s.package_name() == PACKAGE)
            .map(|s| s.methods().len())
            .sum();
        assert_eq!(routes.iter().filter(|r| r.primary).count(), rpc_count);
        let mut caps: Vec<String> = routes
            .iter()
            .filter(|r| r.primary)
            .map(HttpRoute::capability)
            .filter(|c| c.starts_with("auth."))
            .collect();
        caps.sort();
        // Listing and unlinking identities share one path, so one id.
        caps.dedup();
        let mut expected: Vec<String> = CAPABILITIES.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(caps, expected);
    }

    #[test]
    fn templates_bind_path_fields() {
        let pool = pool(DESCRIPTOR_SET).unwrap();
        let routes = routes(&pool).unwrap();
        let check = routes
            .iter()
            .find(|r| r.grpc_path() == "/authmux.v1.ConsentService/CheckConsent")
            .unwrap();
        assert_eq!(check.method, Method::GET);
        assert_eq!(
            check.template,
            "/v1/auth/consent/check/{user_id}/{category}"
        );
        assert_eq!(check.path_params, ["user_id", "category"]);
        assert!(!check.body);
        let create = routes
            .iter()
            .find(|r| r.grpc_path() == "/authmux.v1.UserService/CreateUser")
            .unwrap();
        assert_eq!(create.method, Method::POST);
        assert!(create.body);
    }

    #[test]
    fn bad_templates_are_refused() {
        let pool = pool(DESCRIPTOR_SET).unwrap();
        let input = pool
            .get_message_by_name("authmux.v1.GetUserRequest")
            .unwrap();
        assert!(parse_template("/v1/x/{user_id}", &input).is_ok());
        assert!(parse_template("/v1/x/{nope}", &input).is_err());
        assert!(parse_template("/v1/x/{user_id=*}", &input).is_err());
        assert!(parse_template("v1/x", &input).is_err());
    }
}
