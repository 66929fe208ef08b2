//! What only the embedded backend promises: its file survives the process, and
//! one process at a time opens it. Every promise of the storage interface is
//! checked for each backend in `super::super::conformance`.

use super::*;
use crate::bindings::storage::PutOp;

#[tokio::test]
async fn commits_survive_reopening_and_a_second_opener_is_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("db.redb");
    let put = Op::Put(PutOp {
        table: "t".into(),
        key: b"k".to_vec(),
        value: b"v".to_vec(),
    });
    {
        let store = RedbStore::open(&path, 64 << 20).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.commit(Namespace::Plugin, vec![put]).await, Ok(()));
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
    assert_eq!(
        store.get(Namespace::Plugin, "t", b"k"),
        Ok(Some(b"v".to_vec()))
    );
}
