use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ops::Bound as StdBound;

use sandboxd_contract::storage as limits;

use crate::ports::{Bound, Entry, Op, Scan, Store, StoreError};

type Table = BTreeMap<Vec<u8>, Vec<u8>>;

/// A refusal of the contract's limits, as the host reports one.
fn invalid(refusal: limits::Refusal) -> StoreError {
    StoreError::Invalid(refusal)
}

fn check_key(key: &[u8]) -> Result<(), StoreError> {
    limits::check_key(key).map_err(invalid)
}

fn check_table(table: &str) -> Result<(), StoreError> {
    limits::check_table(table).map_err(invalid)
}

/// The storage contract in memory, refusing what the host refuses (the
/// limits of `sandboxd_contract::storage`, with the same words).
#[derive(Default)]
pub struct MemStore {
    tables: RefCell<BTreeMap<String, Table>>,
    /// Fail this many upcoming commits with a backend error.
    pub fail_commits: Cell<u32>,
    /// Rows returned by scans so far, to check what a page costs.
    pub rows_scanned: Cell<usize>,
}

impl MemStore {
    pub fn len(&self, table: &str) -> usize {
        self.tables.borrow().get(table).map_or(0, BTreeMap::len)
    }

    pub fn raw_get(&self, table: &str, key: &[u8]) -> Option<Vec<u8>> {
        self.tables.borrow().get(table)?.get(key).cloned()
    }

    pub fn raw_put(&self, table: &str, key: &[u8], value: &[u8]) {
        self.tables
            .borrow_mut()
            .entry(table.to_owned())
            .or_default()
            .insert(key.to_vec(), value.to_vec());
    }

    /// Every row of `table` whose key starts with `prefix`, in key order.
    pub fn rows_with_prefix(&self, table: &str, prefix: &[u8]) -> Vec<Entry> {
        self.tables
            .borrow()
            .get(table)
            .map(|t| {
                t.range(prefix.to_vec()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every byte stored, for asserting that no secret is.
    pub fn dump(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for table in self.tables.borrow().values() {
            for (k, v) in table {
                out.extend_from_slice(k);
                out.extend_from_slice(v);
            }
        }
        out
    }
}

fn to_std(b: &Bound) -> StdBound<&[u8]> {
    match b {
        Bound::Unbounded => StdBound::Unbounded,
        Bound::Included(k) => StdBound::Included(k.as_slice()),
        Bound::Excluded(k) => StdBound::Excluded(k.as_slice()),
    }
}

impl Store for MemStore {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        check_table(table)?;
        check_key(key)?;
        Ok(self.raw_get(table, key))
    }

    fn get_many(
        &self,
        table: &'static str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        check_table(table)?;
        limits::check_read_count(keys.len()).map_err(invalid)?;
        keys.iter().try_for_each(|k| check_key(k))?;
        Ok(keys.iter().map(|k| self.raw_get(table, k)).collect())
    }

    fn scan(&self, scan: Scan) -> Result<Vec<Entry>, StoreError> {
        check_table(scan.table)?;
        limits::check_bound(to_std(&scan.start)).map_err(invalid)?;
        limits::check_bound(to_std(&scan.end)).map_err(invalid)?;
        let tables = self.tables.borrow();
        let Some(table) = tables.get(scan.table) else {
            return Ok(Vec::new());
        };
        // `BTreeMap::range` panics on an inverted range; the contract answers
        // nothing for one.
        if !limits::is_ordered(to_std(&scan.start), to_std(&scan.end)) {
            return Ok(Vec::new());
        }
        let limit = (scan.limit as usize).min(limits::MAX_READ);
        let range = table.range::<[u8], _>((to_std(&scan.start), to_std(&scan.end)));
        let rows: Vec<Entry> = if scan.reverse {
            range
                .rev()
                .take(limit)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        } else {
            range
                .take(limit)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        self.rows_scanned.set(self.rows_scanned.get() + rows.len());
        Ok(rows)
    }

    fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        if self.fail_commits.get() > 0 {
            self.fail_commits.set(self.fail_commits.get() - 1);
            return Err(StoreError::Backend("injected failure".into()));
        }
        limits::check_op_count(ops.len()).map_err(invalid)?;
        for op in &ops {
            let (table, key, value) = match op {
                Op::Put { table, key, value } | Op::RequireValue { table, key, value } => {
                    (table, key, Some(value))
                }
                Op::Delete { table, key }
                | Op::RequireAbsent { table, key }
                | Op::RequirePresent { table, key } => (table, key, None),
            };
            check_table(table)?;
            check_key(key)?;
            if let Some(value) = value {
                limits::check_value(value).map_err(invalid)?;
            }
        }
        for (i, op) in ops.iter().enumerate() {
            let ok = match op {
                Op::RequireAbsent { table, key } => self.raw_get(table, key).is_none(),
                Op::RequirePresent { table, key } => self.raw_get(table, key).is_some(),
                Op::RequireValue { table, key, value } => {
                    self.raw_get(table, key).as_ref() == Some(value)
                }
                Op::Put { .. } | Op::Delete { .. } => true,
            };
            if !ok {
                return Err(StoreError::Conflict(i as u32));
            }
        }
        let mut tables = self.tables.borrow_mut();
        for op in ops {
            match op {
                Op::Put { table, key, value } => {
                    tables
                        .entry(table.to_owned())
                        .or_default()
                        .insert(key, value);
                }
                Op::Delete { table, key } => {
                    if let Some(t) = tables.get_mut(table) {
                        t.remove(&key);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
