use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ops::Bound as StdBound;

use crate::ports::{Bound, Entry, Op, Scan, Store, StoreError};

type Table = BTreeMap<Vec<u8>, Vec<u8>>;

/// The host's largest key and value (`host/src/storage/mod.rs`): larger ones
/// are refused as `invalid`, here as there.
const MAX_KEY_BYTES: usize = 1024;
const MAX_VALUE_BYTES: usize = 1 << 20;

fn check_key(key: &[u8]) -> Result<(), StoreError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(StoreError::Invalid(format!(
            "key of {} bytes exceeds {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

fn check_bound(bound: &Bound) -> Result<(), StoreError> {
    match bound {
        Bound::Unbounded => Ok(()),
        Bound::Included(k) | Bound::Excluded(k) => check_key(k),
    }
}

/// The storage contract in memory.
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

fn to_std(b: &Bound) -> StdBound<Vec<u8>> {
    match b {
        Bound::Unbounded => StdBound::Unbounded,
        Bound::Included(k) => StdBound::Included(k.clone()),
        Bound::Excluded(k) => StdBound::Excluded(k.clone()),
    }
}

/// Whether a range is non-empty enough for `BTreeMap::range` (which panics on an
/// inverted one).
fn ordered(start: &Bound, end: &Bound) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s <= e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => s < e,
        _ => true,
    }
}

impl Store for MemStore {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        Ok(self.raw_get(table, key))
    }

    fn get_many(
        &self,
        table: &'static str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().try_for_each(|k| check_key(k))?;
        Ok(keys.iter().map(|k| self.raw_get(table, k)).collect())
    }

    fn scan(&self, scan: Scan) -> Result<Vec<Entry>, StoreError> {
        check_bound(&scan.start)?;
        check_bound(&scan.end)?;
        let tables = self.tables.borrow();
        let Some(table) = tables.get(scan.table) else {
            return Ok(Vec::new());
        };
        if !ordered(&scan.start, &scan.end) {
            return Ok(Vec::new());
        }
        let range = table.range((to_std(&scan.start), to_std(&scan.end)));
        let rows: Vec<Entry> = if scan.reverse {
            range
                .rev()
                .take(scan.limit as usize)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        } else {
            range
                .take(scan.limit as usize)
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
        for op in &ops {
            if let Op::Put { value, .. } = op
                && value.len() > MAX_VALUE_BYTES
            {
                return Err(StoreError::Invalid(format!(
                    "value of {} bytes exceeds {MAX_VALUE_BYTES}",
                    value.len()
                )));
            }
            match op {
                Op::Put { key, .. }
                | Op::Delete { key, .. }
                | Op::RequireAbsent { key, .. }
                | Op::RequirePresent { key, .. }
                | Op::RequireValue { key, .. } => check_key(key)?,
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
