//! The component's export glue: WIT types in, service calls, WIT types out.
//!
//! Nothing here decides anything. Each export builds a [`Service`] over the WIT
//! imports (which implement the [`ports`](crate::ports) traits) and converts
//! between the generated types and the domain ones.
//!
//! - [`sandboxes`]: `info`, `sandboxes` and `specs`;
//! - [`sync`]: `sync`, `conversations` and `callbacks`;
//! - [`lifecycle`]: the `lifecycle` export;
//! - [`imports`]: the WIT imports as the plugin's ports;
//! - [`convert`]: the generated types to and from the domain ones.

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
});

mod convert;
#[cfg(feature = "faults")]
mod faults;
mod imports;
mod lifecycle;
mod sandboxes;
mod sync;

use sandboxd::plugin::{settings, types, user_context};

use crate::error::Error;
use crate::service::Service;

/// Every instance lives for one call: see [`crate::allocator`] for why this
/// allocator and not the default.
#[global_allocator]
static ALLOCATOR: crate::allocator::SizeClasses = crate::allocator::SizeClasses::new();

struct Component;

export!(Component);

/// Run `f` on a service acting for the current caller, with the current settings.
fn with_service<T>(f: impl FnOnce(&Service<'_>) -> Result<T, Error>) -> Result<T, types::Error> {
    let settings = convert::from_settings(settings::get());
    let service = Service {
        store: &imports::WitStore,
        http: &imports::WitHttp,
        env: &imports::WitEnv,
        settings: &settings,
        caller: user_context::current_user(),
    };
    f(&service).map_err(convert::to_error)
}
