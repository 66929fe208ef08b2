//! `storage`: the plugin's tables in the host's store (see `crate::storage`).

use std::future::Future;

use super::HostState;
use crate::bindings::storage::{Entry, Host, Op, ScanRequest, StorageError};

impl Host for HostState {
    fn get(&mut self, table: String, key: Vec<u8>) -> Result<Option<Vec<u8>>, StorageError> {
        self.services.store.get(&table, &key)
    }

    fn get_many(
        &mut self,
        table: String,
        keys: Vec<Vec<u8>>,
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.services.store.get_many(&table, &keys)
    }

    fn scan(&mut self, request: ScanRequest) -> Result<Vec<Entry>, StorageError> {
        self.services.store.scan(&request)
    }

    fn commit(
        &mut self,
        ops: Vec<Op>,
    ) -> impl Future<Output = wasmtime::Result<Result<(), StorageError>>> + Send {
        let written: u64 = ops
            .iter()
            .map(|op| match op {
                Op::Put(put) => (put.key.len() + put.value.len()) as u64,
                _ => 0,
            })
            .sum();
        let within_budget = self.meter.writes(written);
        let store = self.services.store.clone();
        async move {
            within_budget?;
            Ok(store.commit(ops).await)
        }
    }
}
