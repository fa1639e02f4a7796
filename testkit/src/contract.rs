//! The `contract!` macro: one scenario on every backend and transport,
//! and against the vendor emulators.

/// Declares a scenario for SQLite and PostgreSQL over REST and gRPC; with
/// `vendors`, also against each vendor emulator (SQLite, both transports);
/// with `only vendors`, against those emulators alone (a rule of theirs the
/// built-in provider does not have).
#[macro_export]
macro_rules! contract {
    ($name:ident) => {
        $crate::contract!($name, |_| {});
    };
    ($name:ident, only vendors[$($vendor:ident),*]) => {
        mod $name {
            use super::*;
            $($crate::contract!(@vendor $name, $vendor);)*
        }
    };
    ($name:ident, vendors) => {
        $crate::contract!($name, vendors[clerk, workos, supabase]);
    };
    ($name:ident, vendors[$($vendor:ident),*]) => {
        $crate::contract!($name, |_| {}, vendors[$($vendor),*]);
    };
    ($name:ident, $adjust:expr, vendors[$($vendor:ident),*]) => {
        mod $name {
            use super::*;
            $crate::contract!(@native $name, $adjust);
            $($crate::contract!(@vendor $name, $vendor);)*
        }
    };
    ($name:ident, $adjust:expr) => {
        mod $name {
            use super::*;
            $crate::contract!(@native $name, $adjust);
        }
    };
    (@native $name:ident, $adjust:expr) => {
        async fn run(b: $crate::Backend, t: $crate::Transport) {
            if let Some(s) = $crate::Server::start_with(b, $adjust).await {
                $name(&s, t).await;
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn sqlite_rest() {
            run($crate::Backend::Sqlite, $crate::Transport::Rest).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn sqlite_grpc() {
            run($crate::Backend::Sqlite, $crate::Transport::Grpc).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn postgres_rest() {
            run($crate::Backend::Postgres, $crate::Transport::Rest).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn postgres_grpc() {
            run($crate::Backend::Postgres, $crate::Transport::Grpc).await
        }
    };
    (@vendor $name:ident, $vendor:ident) => {
        mod $vendor {
            use super::*;
            async fn run(t: $crate::Transport) {
                let s = $crate::Server::start_vendor(
                    $crate::Backend::Sqlite,
                    authmux::vendors::VendorKind::parse(stringify!($vendor)).expect("a vendor name"),
                )
                .await
                .unwrap();
                $name(&s, t).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_rest() {
                run($crate::Transport::Rest).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_grpc() {
                run($crate::Transport::Grpc).await
            }
        }
    };
}
