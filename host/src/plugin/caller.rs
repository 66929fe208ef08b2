//! Who a plugin call acts for.
//!
//! The host authenticates; the plugin scopes. A call carries at most a user id
//! into the plugin (`user-context.current-user`), and the kind of caller picks
//! the call's limits: calls for API requests get the API limits, the host's own
//! background work (poll cycles, deliveries, reconciliation) the background ones.

/// Who a plugin call acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Sees everything, within the API limits: an admin key, the single user of
    /// `auth.mode = "none"`, or an agent server's webhook (which the plugin
    /// scopes by the session key it presents).
    All,
    /// One user: sees and touches only what that user created.
    User(String),
    /// The host itself, for background work, within the background limits.
    Host,
}

impl Caller {
    /// The user id the plugin sees (none: the caller sees everything).
    pub fn user_id(&self) -> Option<String> {
        match self {
            Caller::User(user) => Some(user.clone()),
            Caller::All | Caller::Host => None,
        }
    }

    /// Whether this is an administrator's (or the single user's) request.
    pub fn is_admin(&self) -> bool {
        *self == Caller::All
    }
}
