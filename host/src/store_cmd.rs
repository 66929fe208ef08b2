//! `sandboxd store bench`: the cost of one durable commit of the embedded
//! store, measured alone (one writer, nothing else running), in a temporary
//! directory on the same filesystem as `data_dir` would be by default.
//!
//! The reference the benchmarks compare a start and a delete against: an
//! operation that must be durable cannot be faster than its one fsync.

use std::path::Path;
use std::time::Instant;

use crate::bindings::storage::{Op, PutOp};
use crate::storage::{Namespace, RedbStore};
use crate::timing::Samples;

/// The size of what a start writes: a sandbox record and its index entries.
const RECORD_BYTES: usize = 600;

pub async fn bench(dir: Option<&Path>, iterations: usize, json: bool) -> anyhow::Result<()> {
    let tmp = match dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let store = RedbStore::open(&tmp.path().join("bench.redb"), 16 << 20)?;
    let mut samples = Vec::with_capacity(iterations);
    let warm_up = iterations / 10;
    for i in 0..iterations + warm_up {
        let id = format!("{i:016}");
        let put = |table: &str, key: String, value: Vec<u8>| {
            Op::Put(PutOp {
                table: table.to_owned(),
                key: key.into_bytes(),
                value,
            })
        };
        let ops = vec![
            put("sandboxes", id.clone(), vec![b'x'; RECORD_BYTES]),
            put("by_time", format!("t{id}"), Vec::new()),
            put("by_user", format!("u{id}"), Vec::new()),
        ];
        let started = Instant::now();
        store.commit(Namespace::Plugin, ops).await?;
        if i >= warm_up {
            samples.push(started.elapsed());
        }
    }
    Samples::new(samples).print("one durable commit (3 puts) of the embedded store", json);
    Ok(())
}
