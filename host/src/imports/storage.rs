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

    fn commit(&mut self, ops: Vec<Op>) -> impl Future<Output = Result<(), StorageError>> + Send {
        let store = self.services.store.clone();
        async move { store.commit(ops).await }
    }
}
