use super::*;
use crate::bindings::storage::{Bound, KeyRef, PutOp, ValueRef};

fn put(table: &str, key: &[u8], value: &[u8]) -> Op {
    Op::Put(PutOp {
        table: table.into(),
        key: key.to_vec(),
        value: value.to_vec(),
    })
}

fn key(table: &str, key: &[u8]) -> KeyRef {
    KeyRef {
        table: table.into(),
        key: key.to_vec(),
    }
}

fn open() -> (tempfile::TempDir, RedbStore) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store =
        RedbStore::open(&dir.path().join("db.redb"), 64 << 20).unwrap_or_else(|e| panic!("{e}"));
    (dir, store)
}

fn scan(store: &RedbStore, start: Bound, end: Bound, reverse: bool, limit: u32) -> Vec<Vec<u8>> {
    store
        .scan(&ScanRequest {
            table: "t".into(),
            start,
            end,
            reverse,
            limit,
        })
        .unwrap_or_else(|e| panic!("{e:?}"))
        .into_iter()
        .map(|e| e.key)
        .collect()
}

#[tokio::test]
async fn reads_what_was_committed_and_nothing_of_unknown_tables() {
    let (_dir, store) = open();
    assert_eq!(store.get("t", b"a"), Ok(None));
    assert_eq!(
        store
            .commit(vec![put("t", b"a", b"1"), put("u", b"a", b"2")])
            .await,
        Ok(())
    );
    assert_eq!(store.get("t", b"a"), Ok(Some(b"1".to_vec())));
    assert_eq!(store.get("u", b"a"), Ok(Some(b"2".to_vec())));
    assert_eq!(
        store.get_many("t", &[b"a".to_vec(), b"zz".to_vec()]),
        Ok(vec![Some(b"1".to_vec()), None])
    );
    assert_eq!(store.get_many("never", &[b"a".to_vec()]), Ok(vec![None]));
}

#[tokio::test]
async fn scans_honour_bounds_direction_and_limit() {
    let (_dir, store) = open();
    let ops = (b'a'..=b'f').map(|c| put("t", &[c], b"")).collect();
    assert_eq!(store.commit(ops).await, Ok(()));
    let keys = |v: &[&[u8]]| v.iter().map(|k| k.to_vec()).collect::<Vec<_>>();
    assert_eq!(
        scan(
            &store,
            Bound::Included(b"b".to_vec()),
            Bound::Excluded(b"e".to_vec()),
            false,
            10
        ),
        keys(&[b"b", b"c", b"d"])
    );
    assert_eq!(
        scan(
            &store,
            Bound::Excluded(b"b".to_vec()),
            Bound::Unbounded,
            false,
            2
        ),
        keys(&[b"c", b"d"])
    );
    assert_eq!(
        scan(
            &store,
            Bound::Unbounded,
            Bound::Included(b"c".to_vec()),
            true,
            10
        ),
        keys(&[b"c", b"b", b"a"])
    );
    assert!(
        scan(
            &store,
            Bound::Included(b"e".to_vec()),
            Bound::Excluded(b"b".to_vec()),
            false,
            10
        )
        .is_empty()
    );
    assert!(
        scan(
            &store,
            Bound::Excluded(b"c".to_vec()),
            Bound::Excluded(b"c".to_vec()),
            false,
            10
        )
        .is_empty()
    );
    assert!(scan(&store, Bound::Unbounded, Bound::Unbounded, false, 0).is_empty());
}

#[tokio::test]
async fn a_failed_precondition_writes_nothing_and_names_its_index() {
    let (_dir, store) = open();
    assert_eq!(store.commit(vec![put("t", b"a", b"1")]).await, Ok(()));
    let result = store
        .commit(vec![
            put("t", b"b", b"2"),
            Op::RequirePresent(key("t", b"a")),
            Op::RequireAbsent(key("t", b"a")),
        ])
        .await;
    assert_eq!(result, Err(StorageError::Conflict(2)));
    assert_eq!(store.get("t", b"b"), Ok(None));
    let swap = |expect: &[u8], new: &[u8]| {
        vec![
            Op::RequireValue(ValueRef {
                table: "t".into(),
                key: b"a".to_vec(),
                value: expect.to_vec(),
            }),
            put("t", b"a", new),
        ]
    };
    assert_eq!(store.commit(swap(b"1", b"2")).await, Ok(()));
    assert_eq!(
        store.commit(swap(b"1", b"3")).await,
        Err(StorageError::Conflict(0))
    );
    assert_eq!(store.get("t", b"a"), Ok(Some(b"2".to_vec())));
    assert_eq!(store.commit(vec![Op::Delete(key("t", b"a"))]).await, Ok(()));
    assert_eq!(store.get("t", b"a"), Ok(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_are_batched_but_judged_one_by_one() {
    let (_dir, store) = open();
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Everyone writes their own key; everyone also races for "winner".
            let mine = store.commit(vec![put("t", &i.to_be_bytes(), b"x")]).await;
            let race = store
                .commit(vec![
                    Op::RequireAbsent(key("t", b"winner")),
                    put("t", b"winner", &i.to_be_bytes()),
                ])
                .await;
            (mine, race)
        }));
    }
    let mut winners = 0;
    for t in tasks {
        let (mine, race) = t.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mine, Ok(()));
        match race {
            Ok(()) => winners += 1,
            Err(StorageError::Conflict(0)) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(
        scan(&store, Bound::Unbounded, Bound::Unbounded, false, 1000).len(),
        201
    );
}

#[tokio::test]
async fn commits_survive_reopening_and_a_second_opener_is_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("db.redb");
    {
        let store = RedbStore::open(&path, 64 << 20).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.commit(vec![put("t", b"k", b"v")]).await, Ok(()));
        assert!(matches!(
            RedbStore::open(&path, 64 << 20),
            Err(OpenError::InUse(_))
        ));
    }
    // The writer thread holds the database until its channel closes.
    let mut reopened = None;
    for _ in 0..100 {
        match RedbStore::open(&path, 64 << 20) {
            Ok(s) => {
                reopened = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
    let store = reopened.unwrap_or_else(|| panic!("could not reopen"));
    assert_eq!(store.get("t", b"k"), Ok(Some(b"v".to_vec())));
}

#[tokio::test]
async fn malformed_requests_are_refused_before_the_backend() {
    let (_dir, store) = open();
    for bad in ["", "Upper", "has space", "a/b", &"x".repeat(65)] {
        assert!(
            matches!(store.get(bad, b"k"), Err(StorageError::Invalid(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(
        store.get("t", &vec![0; 1025]),
        Err(StorageError::Invalid(_))
    ));
    let huge = put("t", b"k", &vec![0; (1 << 20) + 1]);
    assert!(matches!(
        store.commit(vec![huge]).await,
        Err(StorageError::Invalid(_))
    ));
}
