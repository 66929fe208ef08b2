//! One scenario, both hosts of the plugin.
//!
//! The scenarios of the sandbox API (lifecycle, paging, users, failures of
//! the runtime API, sync by polling and webhooks) are each written once, as
//! `async fn scenario(host: Host)` that starts its server with `host.spawn(…)`
//! or `host.start(…)`, and listed in [`on_both_hosts!`], which makes two tests
//! of each: `<module>::<scenario>::on_rust` and `…::on_node`. Both take their
//! [`serial`](crate::serial) turn, then run the same scenario with the same
//! assertions, so a difference between the hosts is a failing test.
//! (`cargo test -p sandboxd-tests --test e2e on_node` runs the Node.js half.)
//!
//! A scenario that needs what the Node.js host deliberately does not serve
//! (the event stream, callbacks, admin routes, metrics, the local runtime,
//! trusted-header authentication) stays a plain `#[tokio::test]` on the Rust
//! host, with the reason in a line above it.

/// For each `scenario` named, tests `scenario::on_rust` and `scenario::on_node`
/// running `async fn scenario(host: Host)` of the same module on that host.
macro_rules! on_both_hosts {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            use sandboxd_tests::host::Host;

            #[tokio::test]
            async fn on_rust() {
                let _turn = crate::serial::shared().await;
                super::$scenario(Host::Rust).await;
            }

            #[tokio::test]
            async fn on_node() {
                let _turn = crate::serial::shared().await;
                super::$scenario(Host::Node).await;
            }
        }
    )+};
}
