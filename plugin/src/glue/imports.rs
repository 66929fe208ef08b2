//! The WIT imports as the plugin's ports: what [`Service`](crate::service::Service)
//! sees of the host.

use super::convert::{
    from_http_error, from_response, from_storage_error, to_bound, to_op, to_request,
};
use super::sandboxd::plugin::{http, log, storage};
use crate::ports::{self, Entry, Level, Op, Scan, StoreError};

pub struct WitHttp;

impl ports::Http for WitHttp {
    fn send(&self, request: ports::Request) -> Result<ports::Response, ports::HttpError> {
        http::send(&to_request(request))
            .map(from_response)
            .map_err(from_http_error)
    }

    fn send_batch(
        &self,
        requests: Vec<ports::Request>,
    ) -> Vec<Result<ports::Response, ports::HttpError>> {
        let requests: Vec<http::Request> = requests.into_iter().map(to_request).collect();
        http::send_batch(&requests)
            .into_iter()
            .map(|r| r.map(from_response).map_err(from_http_error))
            .collect()
    }

    fn start_batch(
        &self,
        requests: Vec<ports::Request>,
    ) -> Result<ports::BatchId, ports::HttpError> {
        let requests: Vec<http::Request> = requests.into_iter().map(to_request).collect();
        http::start_batch(&requests).map_err(from_http_error)
    }

    fn finish_batch(
        &self,
        batch: ports::BatchId,
    ) -> Result<Vec<Result<ports::Response, ports::HttpError>>, ports::HttpError> {
        http::finish_batch(batch)
            .map(|all| {
                all.into_iter()
                    .map(|r| r.map(from_response).map_err(from_http_error))
                    .collect()
            })
            .map_err(from_http_error)
    }
}

pub struct WitStore;

impl ports::Store for WitStore {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        storage::get(table, key).map_err(from_storage_error)
    }

    fn get_many(
        &self,
        table: &'static str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        storage::get_many(table, keys).map_err(from_storage_error)
    }

    fn scan(&self, scan: Scan) -> Result<Vec<Entry>, StoreError> {
        let request = storage::ScanRequest {
            table: scan.table.to_owned(),
            start: to_bound(scan.start),
            end: to_bound(scan.end),
            reverse: scan.reverse,
            limit: scan.limit,
        };
        storage::scan(&request)
            .map(|entries| entries.into_iter().map(|e| (e.key, e.value)).collect())
            .map_err(from_storage_error)
    }

    fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let ops: Vec<storage::Op> = ops.into_iter().map(to_op).collect();
        storage::commit(&ops).map_err(from_storage_error)
    }

    fn commit_relaxed(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let ops: Vec<storage::Op> = ops.into_iter().map(to_op).collect();
        storage::commit_relaxed(&ops).map_err(from_storage_error)
    }
}

pub struct WitEnv;

impl ports::Env for WitEnv {
    fn now_micros(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    }

    fn random_16(&self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        // WASI random cannot fail in a conforming host; if it did, a zero id would
        // collide at once (409) instead of passing silently.
        let _ = getrandom::fill(&mut bytes);
        bytes
    }

    fn sleep_ms(&self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }

    fn log(&self, level: Level, message: &str, fields: &[(&str, &str)]) {
        let level = match level {
            Level::Trace => log::Level::Trace,
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        log::log(level, message, &fields);
    }
}
