//! The storage interface's promises as executable checks, for every backend:
//! run against redb by the host's unit tests and against a real PostgreSQL by
//! the end-to-end tests (the `conformance` feature exposes this module there).
//!
//! [`run`] takes several handles on one store: for redb, clones of one; for
//! PostgreSQL, independent connection pools, as separate replicas would have.
//! Each check uses tables of its own, so the checks can share the store.

use std::collections::BTreeSet;

use super::{Durability, Namespace, Store};
use crate::bindings::storage::{
    Bound, Entry, KeyRef, Op, PutOp, ScanRequest, StorageError, ValueRef,
};

const NS: Namespace = Namespace::Plugin;

fn put(table: &str, key: &[u8], value: &[u8]) -> Op {
    Op::Put(PutOp {
        table: table.into(),
        key: key.to_vec(),
        value: value.to_vec(),
    })
}

fn key_ref(table: &str, key: &[u8]) -> KeyRef {
    KeyRef {
        table: table.into(),
        key: key.to_vec(),
    }
}

async fn get(store: &Store, table: &str, key: &[u8]) -> Option<Vec<u8>> {
    store
        .get(NS, table, key)
        .await
        .unwrap_or_else(|e| panic!("get {table}: {e:?}"))
}

async fn commit(store: &Store, ops: Vec<Op>) -> Result<(), StorageError> {
    store.commit(NS, ops).await
}

async fn keys(
    store: &Store,
    table: &str,
    start: Bound,
    end: Bound,
    reverse: bool,
    limit: u32,
) -> Vec<Vec<u8>> {
    store
        .scan(
            NS,
            &ScanRequest {
                table: table.into(),
                start,
                end,
                reverse,
                limit,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("scan {table}: {e:?}"))
        .into_iter()
        .map(|Entry { key, .. }| key)
        .collect()
}

/// Every check, in order.
pub async fn run(stores: &[Store]) {
    assert!(!stores.is_empty());
    reads_what_was_committed(&stores[0]).await;
    scans_are_ordered_by_bytes_with_bounds_direction_and_limit(&stores[0]).await;
    a_failed_precondition_writes_nothing_and_names_its_index(&stores[0]).await;
    ops_apply_in_order(&stores[0]).await;
    limits_are_refused_the_same_way(&stores[0]).await;
    namespaces_are_apart(&stores[0]).await;
    concurrent_writers_through_every_handle_are_judged_one_by_one(stores).await;
    a_commit_through_one_handle_is_read_through_another(stores).await;
    a_relaxed_commit_is_atomic_checked_and_visible_at_once(stores).await;
}

async fn reads_what_was_committed(store: &Store) {
    assert_eq!(get(store, "c_read", b"a").await, None);
    assert_eq!(
        commit(
            store,
            vec![put("c_read", b"a", b"1"), put("c_read2", b"a", b"2")]
        )
        .await,
        Ok(())
    );
    assert_eq!(get(store, "c_read", b"a").await, Some(b"1".to_vec()));
    assert_eq!(get(store, "c_read2", b"a").await, Some(b"2".to_vec()));
    assert_eq!(
        store
            .get_many(
                NS,
                "c_read",
                &[b"zz".to_vec(), b"a".to_vec(), b"a".to_vec()]
            )
            .await,
        Ok(vec![None, Some(b"1".to_vec()), Some(b"1".to_vec())]),
        "in the order asked, repeats included"
    );
    assert_eq!(
        store.get_many(NS, "c_never", &[b"a".to_vec()]).await,
        Ok(vec![None])
    );
    assert_eq!(store.get_many(NS, "c_read", &[]).await, Ok(vec![]));
    // A value of the largest size, and an empty one, come back whole.
    let big = vec![0xa5; sandboxd_contract::storage::MAX_VALUE_BYTES];
    assert_eq!(
        commit(
            store,
            vec![put("c_read", b"big", &big), put("c_read", b"empty", b"")]
        )
        .await,
        Ok(())
    );
    assert_eq!(get(store, "c_read", b"big").await, Some(big));
    assert_eq!(get(store, "c_read", b"empty").await, Some(Vec::new()));
}

async fn scans_are_ordered_by_bytes_with_bounds_direction_and_limit(store: &Store) {
    let t = "c_scan";
    // Bytes order: 0x00 and 0xFF bytes, a key and its extensions.
    let all: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x00],
        vec![0x00, 0x00],
        b"a".to_vec(),
        vec![b'a', 0x00],
        b"ab".to_vec(),
        b"b".to_vec(),
        vec![0x7f],
        vec![0x80],
        vec![0xff],
        vec![0xff, 0xff],
    ];
    let ops = all.iter().rev().map(|k| put(t, k, b"")).collect();
    assert_eq!(commit(store, ops).await, Ok(()));
    let sorted: BTreeSet<Vec<u8>> = all.iter().cloned().collect();
    let sorted: Vec<Vec<u8>> = sorted.into_iter().collect();
    assert_eq!(
        keys(store, t, Bound::Unbounded, Bound::Unbounded, false, 100).await,
        sorted
    );
    let mut reversed = sorted.clone();
    reversed.reverse();
    assert_eq!(
        keys(store, t, Bound::Unbounded, Bound::Unbounded, true, 100).await,
        reversed
    );
    assert_eq!(
        keys(
            store,
            t,
            Bound::Included(b"a".to_vec()),
            Bound::Excluded(b"b".to_vec()),
            false,
            100
        )
        .await,
        vec![b"a".to_vec(), vec![b'a', 0x00], b"ab".to_vec()]
    );
    assert_eq!(
        keys(
            store,
            t,
            Bound::Excluded(b"a".to_vec()),
            Bound::Included(b"b".to_vec()),
            false,
            2
        )
        .await,
        vec![vec![b'a', 0x00], b"ab".to_vec()],
        "the limit cuts from the start"
    );
    assert_eq!(
        keys(
            store,
            t,
            Bound::Unbounded,
            Bound::Excluded(b"ab".to_vec()),
            true,
            2
        )
        .await,
        vec![vec![b'a', 0x00], b"a".to_vec()],
        "reverse: the limit cuts from the end"
    );
    for (start, end) in [
        (
            Bound::Included(b"b".to_vec()),
            Bound::Excluded(b"a".to_vec()),
        ),
        (
            Bound::Excluded(b"a".to_vec()),
            Bound::Excluded(b"a".to_vec()),
        ),
        (
            Bound::Included(b"a".to_vec()),
            Bound::Excluded(b"a".to_vec()),
        ),
    ] {
        assert!(
            keys(store, t, start, end, false, 100).await.is_empty(),
            "an empty range"
        );
    }
    assert_eq!(
        keys(
            store,
            t,
            Bound::Included(b"a".to_vec()),
            Bound::Included(b"a".to_vec()),
            false,
            100
        )
        .await,
        vec![b"a".to_vec()]
    );
    assert!(
        keys(store, t, Bound::Unbounded, Bound::Unbounded, false, 0)
            .await
            .is_empty()
    );
    assert!(
        keys(
            store,
            "c_never",
            Bound::Unbounded,
            Bound::Unbounded,
            false,
            10
        )
        .await
        .is_empty()
    );
    // Values come with their keys.
    assert_eq!(commit(store, vec![put(t, b"v", b"value")]).await, Ok(()));
    let rows = store
        .scan(
            NS,
            &ScanRequest {
                table: t.into(),
                start: Bound::Included(b"v".to_vec()),
                end: Bound::Included(b"v".to_vec()),
                reverse: false,
                limit: 1,
            },
        )
        .await;
    assert_eq!(
        rows,
        Ok(vec![Entry {
            key: b"v".to_vec(),
            value: b"value".to_vec()
        }])
    );
}

async fn a_failed_precondition_writes_nothing_and_names_its_index(store: &Store) {
    let t = "c_pre";
    assert_eq!(commit(store, vec![put(t, b"a", b"1")]).await, Ok(()));
    let result = commit(
        store,
        vec![
            put(t, b"b", b"2"),
            Op::RequirePresent(key_ref(t, b"a")),
            Op::RequireAbsent(key_ref(t, b"a")),
        ],
    )
    .await;
    assert_eq!(result, Err(StorageError::Conflict(2)));
    assert_eq!(
        get(store, t, b"b").await,
        None,
        "nothing of a refused commit is written"
    );
    assert_eq!(
        commit(store, vec![Op::RequirePresent(key_ref(t, b"nope"))]).await,
        Err(StorageError::Conflict(0))
    );
    let swap = |expect: &[u8], new: &[u8]| {
        vec![
            Op::RequireValue(ValueRef {
                table: t.into(),
                key: b"a".to_vec(),
                value: expect.to_vec(),
            }),
            put(t, b"a", new),
        ]
    };
    assert_eq!(commit(store, swap(b"1", b"2")).await, Ok(()));
    assert_eq!(
        commit(store, swap(b"1", b"3")).await,
        Err(StorageError::Conflict(0))
    );
    assert_eq!(get(store, t, b"a").await, Some(b"2".to_vec()));
    // A value that is a prefix of the stored one is not it.
    assert_eq!(
        commit(store, swap(b"", b"4")).await,
        Err(StorageError::Conflict(0))
    );
    assert_eq!(
        commit(
            store,
            vec![Op::RequireValue(ValueRef {
                table: t.into(),
                key: b"missing".to_vec(),
                value: Vec::new(),
            })]
        )
        .await,
        Err(StorageError::Conflict(0)),
        "an absent key has no value, not an empty one"
    );
}

async fn ops_apply_in_order(store: &Store) {
    let t = "c_order";
    assert_eq!(
        commit(
            store,
            vec![put(t, b"k", b"1"), Op::Delete(key_ref(t, b"k"))]
        )
        .await,
        Ok(())
    );
    assert_eq!(get(store, t, b"k").await, None, "a put then a delete");
    assert_eq!(
        commit(
            store,
            vec![
                Op::Delete(key_ref(t, b"k")),
                put(t, b"k", b"2"),
                put(t, b"k", b"3")
            ]
        )
        .await,
        Ok(())
    );
    assert_eq!(
        get(store, t, b"k").await,
        Some(b"3".to_vec()),
        "the last put wins"
    );
    // Preconditions are judged on the state before the commit, not after its
    // own earlier ops.
    assert_eq!(
        commit(
            store,
            vec![put(t, b"new", b"x"), Op::RequireAbsent(key_ref(t, b"new"))]
        )
        .await,
        Ok(())
    );
    assert_eq!(commit(store, vec![]).await, Ok(()), "an empty commit");
    assert_eq!(
        commit(store, vec![Op::Delete(key_ref(t, b"never-there"))]).await,
        Ok(()),
        "deleting what is not there"
    );
}

async fn limits_are_refused_the_same_way(store: &Store) {
    for bad in ["", "Upper", "has space", "a/b", &"x".repeat(65)] {
        assert!(
            matches!(
                store.get(NS, bad, b"k").await,
                Err(StorageError::Invalid(_))
            ),
            "table {bad:?}"
        );
    }
    assert!(matches!(
        store.get(NS, "c_lim", &vec![0; 1025]).await,
        Err(StorageError::Invalid(m)) if m.contains("1025")
    ));
    let huge = put("c_lim", b"k", &vec![0; (1 << 20) + 1]);
    assert!(matches!(
        commit(store, vec![huge]).await,
        Err(StorageError::Invalid(_))
    ));
    assert_eq!(get(store, "c_lim", b"k").await, None);
    let long_bound = ScanRequest {
        table: "c_lim".into(),
        start: Bound::Excluded(vec![0; 2000]),
        end: Bound::Unbounded,
        reverse: false,
        limit: 1,
    };
    assert!(matches!(
        store.scan(NS, &long_bound).await,
        Err(StorageError::Invalid(_))
    ));
    let too_many: Vec<Op> = (0..100_001u32)
        .map(|i| put("c_lim", &i.to_be_bytes(), b""))
        .collect();
    assert!(matches!(
        commit(store, too_many).await,
        Err(StorageError::Invalid(_))
    ));
}

async fn namespaces_are_apart(store: &Store) {
    assert_eq!(
        store
            .commit(Namespace::Host, vec![put("c_ns", b"k", b"host")])
            .await,
        Ok(())
    );
    assert_eq!(
        get(store, "c_ns", b"k").await,
        None,
        "the plugin never sees the host's tables"
    );
    assert_eq!(
        commit(store, vec![put("c_ns", b"k", b"plugin")]).await,
        Ok(())
    );
    assert_eq!(
        store.get(Namespace::Host, "c_ns", b"k").await,
        Ok(Some(b"host".to_vec()))
    );
}

async fn concurrent_writers_through_every_handle_are_judged_one_by_one(stores: &[Store]) {
    let t = "c_race";
    let mut tasks = Vec::new();
    for i in 0..120u32 {
        let store = stores[i as usize % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            // Everyone writes their own key; everyone also races for "winner",
            // and everyone increments one counter by compare-and-swap.
            let mine = store.commit(NS, vec![put(t, &i.to_be_bytes(), b"x")]).await;
            let race = store
                .commit(
                    NS,
                    vec![
                        Op::RequireAbsent(key_ref(t, b"winner")),
                        put(t, b"winner", &i.to_be_bytes()),
                    ],
                )
                .await;
            let mut increments = 0;
            for _ in 0..200 {
                let current = store.get(NS, t, b"counter").await.unwrap_or_default();
                let n = current
                    .as_deref()
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(0, u64::from_be_bytes);
                let precondition = match current {
                    Some(value) => Op::RequireValue(ValueRef {
                        table: t.into(),
                        key: b"counter".to_vec(),
                        value,
                    }),
                    None => Op::RequireAbsent(key_ref(t, b"counter")),
                };
                match store
                    .commit(
                        NS,
                        vec![precondition, put(t, b"counter", &(n + 1).to_be_bytes())],
                    )
                    .await
                {
                    Ok(()) => {
                        increments += 1;
                        break;
                    }
                    Err(StorageError::Conflict(0)) => continue,
                    Err(e) => panic!("counter: {e:?}"),
                }
            }
            (mine, race, increments)
        }));
    }
    let mut winners = 0;
    let mut increments = 0;
    for task in tasks {
        let (mine, race, n) = task.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mine, Ok(()));
        match race {
            Ok(()) => winners += 1,
            Err(StorageError::Conflict(0)) => {}
            Err(e) => panic!("{e:?}"),
        }
        increments += n;
    }
    assert_eq!(winners, 1, "exactly one RequireAbsent wins");
    assert_eq!(increments, 120, "every increment eventually lands");
    let counter = get(&stores[0], t, b"counter").await;
    assert_eq!(
        counter,
        Some(120u64.to_be_bytes().to_vec()),
        "and none is lost"
    );
    assert_eq!(
        keys(
            &stores[0],
            t,
            Bound::Unbounded,
            Bound::Unbounded,
            false,
            1000
        )
        .await
        .len(),
        122
    );
}

async fn a_commit_through_one_handle_is_read_through_another(stores: &[Store]) {
    for (i, writer) in stores.iter().enumerate() {
        let k = format!("k{i}");
        assert_eq!(
            commit(writer, vec![put("c_across", k.as_bytes(), b"v")]).await,
            Ok(())
        );
        for reader in stores {
            assert_eq!(
                get(reader, "c_across", k.as_bytes()).await,
                Some(b"v".to_vec())
            );
        }
    }
}

/// `commit-relaxed` differs from `commit` only in when it is durable: its
/// preconditions, atomicity and visibility (through every handle) are the same.
async fn relaxed(store: &Store, ops: Vec<Op>) -> Result<(), StorageError> {
    store.commit_with(NS, ops, Durability::Relaxed).await
}

async fn a_relaxed_commit_is_atomic_checked_and_visible_at_once(stores: &[Store]) {
    let writer = &stores[0];
    assert_eq!(
        relaxed(
            writer,
            vec![put("c_relaxed", b"a", b"1"), put("c_relaxed", b"b", b"2")]
        )
        .await,
        Ok(())
    );
    for reader in stores {
        assert_eq!(get(reader, "c_relaxed", b"a").await, Some(b"1".to_vec()));
        assert_eq!(get(reader, "c_relaxed", b"b").await, Some(b"2".to_vec()));
    }
    let refused = relaxed(
        writer,
        vec![
            put("c_relaxed", b"c", b"3"),
            Op::RequireAbsent(key_ref("c_relaxed", b"a")),
        ],
    )
    .await;
    assert_eq!(refused, Err(StorageError::Conflict(1)));
    assert_eq!(get(writer, "c_relaxed", b"c").await, None);
    // A durable commit may depend on what a relaxed one wrote.
    assert_eq!(
        commit(
            writer,
            vec![
                Op::RequireValue(ValueRef {
                    table: "c_relaxed".into(),
                    key: b"a".to_vec(),
                    value: b"1".to_vec(),
                }),
                put("c_relaxed", b"a", b"4"),
            ],
        )
        .await,
        Ok(())
    );
    assert_eq!(
        relaxed(writer, vec![put("c_relaxed", &[0u8; 1025], b"")]).await,
        Err(StorageError::Invalid(
            "key of 1025 bytes exceeds 1024".into()
        ))
    );
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redb_keeps_every_promise() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = super::super::RedbStore::open(&dir.path().join("db.redb"), 64 << 20)
            .unwrap_or_else(|e| panic!("{e}"));
        let store = super::Store::Redb(store);
        super::run(&[store.clone(), store]).await;
    }
}
