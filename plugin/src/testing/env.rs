use std::cell::{Cell, RefCell};

use crate::ports::{Env, Level};

/// A log line: level, message, fields.
pub type LogLine = (Level, String, Vec<(String, String)>);

/// A clock the test moves, randomness that counts, and the logs written.
pub struct FakeEnv {
    pub now_us: Cell<i64>,
    next_random: Cell<u128>,
    pub logs: RefCell<Vec<LogLine>>,
    /// Every backoff asked for, in milliseconds (the clock moves by as much).
    pub sleeps: RefCell<Vec<u64>>,
}

impl Default for FakeEnv {
    fn default() -> Self {
        FakeEnv {
            now_us: Cell::new(1_795_677_201_000_000),
            next_random: Cell::new(1),
            logs: RefCell::new(Vec::new()),
            sleeps: RefCell::new(Vec::new()),
        }
    }
}

impl FakeEnv {
    pub fn advance_secs(&self, secs: i64) {
        self.now_us.set(self.now_us.get() + secs * 1_000_000);
    }

    /// Every log line with its fields, for asserting that no secret is logged.
    pub fn all_log_text(&self) -> String {
        self.logs
            .borrow()
            .iter()
            .map(|(_, m, f)| format!("{m} {f:?}\n"))
            .collect()
    }
}

impl Env for FakeEnv {
    fn now_micros(&self) -> i64 {
        // Each call moves time on by a microsecond, so sandboxes made in one test
        // have distinct creation times, as they would in life.
        let now = self.now_us.get();
        self.now_us.set(now + 1);
        now
    }

    fn random_16(&self) -> [u8; 16] {
        let n = self.next_random.get();
        self.next_random.set(
            n.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        );
        n.to_be_bytes()
    }

    fn sleep_ms(&self, ms: u64) {
        self.sleeps.borrow_mut().push(ms);
        self.now_us
            .set(self.now_us.get() + i64::try_from(ms).unwrap_or(0) * 1_000);
    }

    fn log(&self, level: Level, message: &str, fields: &[(&str, &str)]) {
        self.logs.borrow_mut().push((
            level,
            message.to_owned(),
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ));
    }
}
