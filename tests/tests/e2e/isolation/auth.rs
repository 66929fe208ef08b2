//! Misused credentials: a session key or an id sent as an API key.

use super::world::{Run, Who};

impl Run {
    /// Session keys and ids are not API keys; users are not admins.
    pub(super) async fn op_auth_misuse(&mut self, u: usize) {
        let keys: Vec<String> = self.keys_seen.iter().map(|(k, _)| k.clone()).collect();
        let token = match self.rng.below(3) {
            0 => self.pick_or_random(&keys, |r| r.hex(32)),
            1 => {
                let ids = self.sandbox_ids(|_| true);
                self.pick_or_random(&ids, |r| r.base62(22))
            }
            _ => self.rng.hex(24),
        };
        let path = [
            "/api/v1/sandboxes/search",
            "/api/v1/conversations/search",
            "/api/v1/event-callbacks",
        ][self.rng.below(3)];
        for who in [Who::Bearer(token.clone(), u), Who::Session(Some(token), u)] {
            let answer = self.get(&who, path).await;
            if answer.status != 401 {
                self.fail(
                    &answer.call,
                    format!("answered {} instead of 401: {}", answer.status, answer.text),
                );
            }
        }
        let answer = self.get(&Who::User(u), "/admin/plugin").await;
        if answer.status != 403 {
            self.fail(
                &answer.call,
                format!(
                    "a user reached an admin route: {} {}",
                    answer.status, answer.text
                ),
            );
        }
    }
}
