//! `storage`: the plugin's tables in the host's store (see `crate::storage`),
//! in the plugin's namespace.

use std::future::Future;

use super::HostState;
use crate::bindings::storage::{Entry, Host, Op, ScanRequest, StorageError};
use crate::storage::Namespace;

impl Host for HostState {
    fn get(
        &mut self,
        table: String,
        key: Vec<u8>,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StorageError>> + Send {
        let store = self.services.store.clone();
        async move { store.get(Namespace::Plugin, &table, &key).await }
    }

    fn get_many(
        &mut self,
        table: String,
        keys: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<Vec<Option<Vec<u8>>>, StorageError>> + Send {
        let store = self.services.store.clone();
        async move { store.get_many(Namespace::Plugin, &table, &keys).await }
    }

    fn scan(
        &mut self,
        request: ScanRequest,
    ) -> impl Future<Output = Result<Vec<Entry>, StorageError>> + Send {
        let store = self.services.store.clone();
        async move { store.scan(Namespace::Plugin, &request).await }
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
            Ok(store.commit(Namespace::Plugin, ops).await)
        }
    }
}
