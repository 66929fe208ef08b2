//! The PostgreSQL backend against the storage interface's promises, on a real
//! server started by the tests: the same checks the embedded backend passes
//! (`sandboxd::storage::conformance`), through three independent connection
//! pools as three replicas would have, and a schema that replicas starting at
//! once migrate once.

use sandboxd::config::Secret;
use sandboxd::storage::{PgStore, Store, conformance};
use sandboxd_tests::postgres;

async fn connect(url: &str) -> PgStore {
    PgStore::connect(&Secret::new(url.to_owned()), 8)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_every_promise_of_the_storage_interface() {
    let _turn = crate::serial::shared().await;
    let url = postgres::server().database();
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(Store::Postgres(Box::new(connect(&url).await)));
    }
    conformance::run(&stores).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_at_once_migrate_the_schema_once() {
    let _turn = crate::serial::shared().await;
    let url = postgres::server().database();
    let starts: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { connect(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(start.await.unwrap_or_else(|e| panic!("{e}")));
    }
    let client = stores[0]
        .pool()
        .get()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let versions: Vec<i32> = client
        .query("SELECT version FROM sandboxd_schema ORDER BY version", &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, vec![1], "each migration recorded once");
    let leases: i64 = client
        .query_one("SELECT count(*) FROM sandboxd_leases", &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .get(0);
    assert_eq!(leases, 64, "one lease per bucket");
    // A sixth, later, finds the schema current and changes nothing.
    connect(&url).await;
}
