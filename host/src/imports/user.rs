//! `user-context`: the caller the API authenticated.

use super::HostState;
use crate::bindings::user_context::Host;

impl Host for HostState {
    fn current_user(&mut self) -> Option<String> {
        self.user.clone()
    }
}
