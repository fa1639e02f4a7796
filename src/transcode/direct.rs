//! REST's way into the services: a table of every unary method, generated
//! by `build.rs` from the same services tonic serves, that calls the
//! service trait in process with the typed request. A REST call is checked
//! against the same rules and answered by the same code as a gRPC call, but
//! pays no HTTP request, gRPC framing, body or trailers in between.

use prost_reflect::DynamicMessage;
use tonic::{Request, Status};

/// Turns the generated table of a package's unary methods
/// (`"/pkg.Service/Method" => service_server::Service::method(Request);`)
/// into `call_direct`, which serves a gRPC path by calling that method.
macro_rules! direct_calls {
    ($($path:literal => $module:ident :: $service:ident :: $method:ident ($input:ty);)*) => {
        /// Serves the unary method at the gRPC path `path` with `api`
        /// directly; the encoded reply. The request is checked as the gRPC
        /// codec checks it.
        pub(crate) async fn call_direct(
            api: &crate::api::Api,
            path: &str,
            request: tonic::Request<prost_reflect::DynamicMessage>,
        ) -> Result<Vec<u8>, tonic::Status> {
            use prost::Message as _;
            match path {
                $($path => {
                    let request = crate::transcode::direct::typed::<$input>(request)?;
                    let reply =
                        <crate::api::Api as $module::$service>::$method(api, request).await?;
                    Ok(reply.into_inner().encode_to_vec())
                })*
                _ => Err(tonic::Status::unimplemented(format!("no unary method {path}"))),
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
