//! Compiles `proto/` in pure Rust: generated prost/tonic code plus an encoded
//! descriptor set (with imports and the `google.api.http` options) that the
//! binary embeds for the transcoder, OpenAPI and reflection.

use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "authmux/v1/common.proto",
    "authmux/v1/rules.proto",
    "authmux/v1/users.proto",
    "authmux/v1/sessions.proto",
    "authmux/v1/consent.proto",
    "authmux/v1/discovery.proto",
    "authmux/v1/oauth.proto",
    "authmux/v1/audit.proto",
    "authmux/v1/privacy.proto",
    "authmux/v1/webhooks.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out = PathBuf::from(env::var("OUT_DIR")?);

    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(PROTOS)?;
    let descriptor_set = compiler.encode_file_descriptor_set();
    fs::write(out.join("authmux_descriptor.bin"), &descriptor_set)?;

    // Type names let the codec find a request's rules by its message name.
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    for (proto, rust) in JSON_WKT {
        config.extern_path(*proto, *rust);
    }
    let tonic = tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .codec_path("crate::api::codec::StrictCodec")
        .service_generator();
    config
        .out_dir(&out)
        .service_generator(Box::new(WithDirectCalls {
            tonic,
            methods: Vec::new(),
        }))
        .compile_fds(compiler.file_descriptor_set())?;

    // serde for the same messages, in proto3's JSON form as REST writes
    // it: proto field names, every field without presence printed.
    let mut json = pbjson_build::Builder::new();
    json.register_descriptors(&descriptor_set)?
        .out_dir(&out)
        .preserve_proto_field_names()
        .emit_fields();
    for (proto, rust) in JSON_WKT {
        json.extern_path(*proto, *rust);
    }
    json.build(&[".authmux.v1"])?;
    Ok(())
}

/// The well-known types the contract uses, as types with serde: the
/// `Struct` family from pbjson-types, and a `Timestamp` of our own,
/// because pbjson-types writes a timestamp with `+00:00` where proto3's
/// JSON form has `Z`.
const JSON_WKT: &[(&str, &str)] = &[
    (".google.protobuf.Timestamp", "crate::pb::Timestamp"),
    (".google.protobuf.Struct", "::pbjson_types::Struct"),
    (".google.protobuf.Value", "::pbjson_types::Value"),
    (".google.protobuf.ListValue", "::pbjson_types::ListValue"),
    (".google.protobuf.NullValue", "::pbjson_types::NullValue"),
];

/// tonic's clients and servers, and after them, once per package, a
/// `transcode::direct_calls!` table of every unary method: its gRPC path,
/// the service trait and method that serve it, and its request type. The
/// REST transcoder calls the services through it, in process, without
/// gRPC's HTTP framing.
struct WithDirectCalls {
    tonic: Box<dyn prost_build::ServiceGenerator>,
    /// By package: `"/package.Service/Method" => module::Trait::method(Request) -> Reply;`
    methods: Vec<(String, String)>,
}

impl prost_build::ServiceGenerator for WithDirectCalls {
    fn generate(&mut self, service: prost_build::Service, buf: &mut String) {
        for m in &service.methods {
            if m.client_streaming || m.server_streaming {
                continue;
            }
            let line = format!(
                "    \"/{}.{}/{}\" => {}_server::{}::{}({}) -> {};\n",
                service.package,
                service.proto_name,
                m.proto_name,
                naive_snake_case(&service.name),
                service.name,
                m.name,
                m.input_type,
                m.output_type,
            );
            self.methods.push((service.package.clone(), line));
        }
        self.tonic.generate(service, buf);
    }

    fn finalize(&mut self, buf: &mut String) {
        self.tonic.finalize(buf);
    }

    fn finalize_package(&mut self, package: &str, buf: &mut String) {
        self.tonic.finalize_package(package, buf);
        let (here, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.methods)
            .into_iter()
            .partition(|(p, _)| p == package);
        self.methods = others;
        if !here.is_empty() {
            buf.push_str("crate::transcode::direct_calls! {\n");
            for (_, line) in here {
                buf.push_str(&line);
            }
            buf.push_str("}\n");
        }
    }
}

/// The module name tonic gives a service's server (`OAuthService` →
/// `o_auth_service`): tonic-build's `naive_snake_case`.
fn naive_snake_case(name: &str) -> String {
    let mut s = String::new();
    let mut it = name.chars().peekable();
    while let Some(c) = it.next() {
        s.push(c.to_ascii_lowercase());
        if it.peek().is_some_and(|n| n.is_uppercase()) {
            s.push('_');
        }
    }
    s
}
