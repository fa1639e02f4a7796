"""authmux from Python over gRPC: create a user, mint a session, verify it.

The stubs are generated from authmux's `proto/` at run time with
grpcio-tools, as any non-Rust caller would generate them.

Usage: python client.py HOST:PORT API_KEY EMAIL
Prints one JSON object: the user id, the session id and the verification.
"""

import importlib
import json
import pathlib
import sys
import tempfile

import grpc
from grpc_tools import protoc

PROTO = pathlib.Path(__file__).resolve().parents[2] / "proto"


def generate(out: pathlib.Path) -> None:
    """Compiles authmux's protos (and the google.api ones they import)."""
    wkt = pathlib.Path(protoc.__file__).parent / "_proto"
    files = [str(p.relative_to(PROTO)) for p in PROTO.rglob("*.proto")]
    code = protoc.main(
        ["protoc", f"-I{PROTO}", f"-I{wkt}", f"--python_out={out}", f"--grpc_python_out={out}", *files]
    )
    if code != 0:
        raise SystemExit(f"protoc failed ({code})")
    # `google` stays a namespace package, shared with protobuf's own.
    for pkg in [out / "authmux", out / "authmux" / "v1"]:
        (pkg / "__init__.py").touch()


def main() -> None:
    address, api_key, email = sys.argv[1:4]
    with tempfile.TemporaryDirectory() as tmp:
        generate(pathlib.Path(tmp))
        sys.path.insert(0, tmp)
        users = importlib.import_module("authmux.v1.users_pb2")
        users_grpc = importlib.import_module("authmux.v1.users_pb2_grpc")
        sessions = importlib.import_module("authmux.v1.sessions_pb2")
        sessions_grpc = importlib.import_module("authmux.v1.sessions_pb2_grpc")

        auth = [("authorization", f"Bearer {api_key}")]
        with grpc.insecure_channel(address) as channel:
            user = users_grpc.UserServiceStub(channel).CreateUser(
                users.CreateUserRequest(email=email), metadata=auth
            )
            stub = sessions_grpc.SessionServiceStub(channel)
            session = stub.CreateSession(
                sessions.CreateSessionRequest(user_id=user.user_id), metadata=auth
            )
            verified = stub.VerifySession(
                sessions.VerifySessionRequest(session_id=session.access_token), metadata=auth
            )
            try:
                stub.VerifySession(
                    sessions.VerifySessionRequest(session_id=session.access_token),
                    metadata=[("authorization", "Bearer amx_wrong")],
                )
                unauthenticated = False
            except grpc.RpcError as e:
                unauthenticated = e.code() == grpc.StatusCode.UNAUTHENTICATED
        print(
            json.dumps(
                {
                    "user_id": user.user_id,
                    "email": user.email,
                    "session_id": session.session_id,
                    "valid": verified.valid,
                    "verified_user_id": verified.user_id,
                    "wrong_key_unauthenticated": unauthenticated,
                }
            )
        )


if __name__ == "__main__":
    main()
