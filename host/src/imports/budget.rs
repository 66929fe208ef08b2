//! What one plugin call may consume of the host: memory, outbound requests,
//! bytes written to storage, log lines.
//!
//! The deadline bounds time; this bounds the rest. Memory, requests and writes
//! are hard limits: the import (or the memory growth) that would pass one traps,
//! and the call fails with [`LimitExceeded`], which the API answers as a 503
//! naming the limit. Log lines past the budget are dropped instead (a chatty
//! plugin should not fail a request) and counted in one warning at the end of
//! the call.

use wasmtime::ResourceLimiter;

/// The per-call allowances of one kind of call (API request or background).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub memory_bytes: usize,
    pub http_requests: u64,
    pub write_bytes: u64,
    pub log_lines: u64,
}

/// The call was stopped because it wanted more than its budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("the plugin call needed more than its memory limit of {} MiB", .0 >> 20)]
    Memory(usize),
    #[error("the plugin call sent more than its limit of {0} HTTP requests")]
    HttpRequests(u64),
    #[error("the plugin call wrote more than its limit of {} MiB to storage", .0 >> 20)]
    WriteBytes(u64),
}

/// Most table elements an instance may grow to: far above what a Rust
/// component uses, far below what would hurt the host.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// One call's consumption so far. It is also the store's [`ResourceLimiter`].
#[derive(Debug)]
pub struct Meter {
    budget: Budget,
    http_requests: u64,
    write_bytes: u64,
    log_lines: u64,
}

impl Meter {
    pub fn new(budget: Budget) -> Meter {
        Meter {
            budget,
            http_requests: 0,
            write_bytes: 0,
            log_lines: 0,
        }
    }

    /// Count `n` more outbound requests.
    pub fn requests(&mut self, n: usize) -> Result<(), LimitExceeded> {
        self.http_requests = self.http_requests.saturating_add(n as u64);
        if self.http_requests > self.budget.http_requests {
            return Err(LimitExceeded::HttpRequests(self.budget.http_requests));
        }
        Ok(())
    }

    /// Count `bytes` more written to storage.
    pub fn writes(&mut self, bytes: u64) -> Result<(), LimitExceeded> {
        self.write_bytes = self.write_bytes.saturating_add(bytes);
        if self.write_bytes > self.budget.write_bytes {
            return Err(LimitExceeded::WriteBytes(self.budget.write_bytes));
        }
        Ok(())
    }

    /// Whether one more log line may be written.
    pub fn log_line(&mut self) -> bool {
        self.log_lines += 1;
        self.log_lines <= self.budget.log_lines
    }

    /// Log lines dropped so far.
    pub fn dropped_log_lines(&self) -> u64 {
        self.log_lines.saturating_sub(self.budget.log_lines)
    }
}

impl ResourceLimiter for Meter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.budget.memory_bytes {
            return Err(LimitExceeded::Memory(self.budget.memory_bytes).into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Budget {
        Budget {
            memory_bytes: 8 << 20,
            http_requests: 3,
            write_bytes: 100,
            log_lines: 2,
        }
    }

    #[test]
    fn each_limit_trips_just_past_its_budget() {
        let mut m = Meter::new(budget());
        assert!(m.requests(2).is_ok());
        assert!(m.requests(1).is_ok());
        assert_eq!(m.requests(1), Err(LimitExceeded::HttpRequests(3)));
        assert!(m.writes(100).is_ok());
        assert_eq!(m.writes(1), Err(LimitExceeded::WriteBytes(100)));
        assert!(m.log_line() && m.log_line() && !m.log_line());
        assert_eq!(m.dropped_log_lines(), 1);
        assert!(m.memory_growing(0, 8 << 20, None).is_ok_and(|ok| ok));
        let err = m.memory_growing(8 << 20, 9 << 20, None).err();
        assert!(err.is_some_and(
            |e| e.downcast_ref::<LimitExceeded>() == Some(&LimitExceeded::Memory(8 << 20))
        ));
    }

    #[test]
    fn messages_name_the_limit() {
        assert_eq!(
            LimitExceeded::Memory(64 << 20).to_string(),
            "the plugin call needed more than its memory limit of 64 MiB"
        );
        assert_eq!(
            LimitExceeded::HttpRequests(1000).to_string(),
            "the plugin call sent more than its limit of 1000 HTTP requests"
        );
    }
}
