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
    fs::write(
        out.join("authmux_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    // Type names let the codec find a request's rules by its message name.
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .codec_path("crate::api::codec::StrictCodec")
        .compile_fds_with_config(compiler.file_descriptor_set(), config)?;
    Ok(())
}
