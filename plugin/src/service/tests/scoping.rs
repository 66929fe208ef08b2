//! Users: another user's sandbox looks exactly like a missing one.

use super::*;

#[test]
fn another_users_sandbox_is_indistinguishable_from_a_missing_one() {
    let w = World::new();
    let id = start(&w, Some("alice"));
    w.runtime.clear_requests();
    let theirs = |e: Result<(), Error>| e.err();
    let missing = w.bob().get("does-not-exist").err();
    let other = w.bob().get(&id).err();
    assert_eq!(
        other.as_ref().map(|e| e.to_string().replace(&id, "ID")),
        missing
            .as_ref()
            .map(|e| e.to_string().replace("does-not-exist", "ID"))
    );
    assert!(matches!(
        theirs(w.bob().pause(&id)),
        Some(Error::NotFound(_))
    ));
    assert!(matches!(
        theirs(w.bob().resume(&id)),
        Some(Error::NotFound(_))
    ));
    assert!(matches!(
        theirs(w.bob().delete(&id)),
        Some(Error::NotFound(_))
    ));
    assert_eq!(
        w.runtime.count("POST"),
        0,
        "bob's calls reached the runtime"
    );
    assert_eq!(w.runtime.count("GET /sessions/"), 0);
    assert!(ok(w.bob().batch_get(std::slice::from_ref(&id)))[0].is_none());
    assert!(ok(w.bob().search(None, 100)).items.is_empty());
    assert_eq!(ok(w.alice().get(&id)).status, Status::Running);
    assert_eq!(ok(w.admin().search(None, 100)).items.len(), 1);
}

#[test]
fn session_key_lookup_is_scoped_and_tracks_the_current_key() {
    let w = World::new();
    let id = start(&w, Some("alice"));
    let key = w.runtime.key_of(&id).unwrap_or_default();
    assert_eq!(
        ok(w.admin().get_by_session_key(&key)).map(|i| i.id),
        Some(id.clone())
    );
    assert_eq!(
        ok(w.alice().get_by_session_key(&key)).map(|i| i.id),
        Some(id.clone())
    );
    assert_eq!(ok(w.bob().get_by_session_key(&key)), None);
    assert_eq!(ok(w.admin().get_by_session_key("wrong")), None);
    assert_eq!(ok(w.admin().get_by_session_key("")), None);
}
