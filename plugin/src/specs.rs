//! Sandbox specs: the operator's list, the first being the default.

use crate::error::{Error, Result};
use crate::model::{SandboxSpec, Settings, SpecPage};

/// The spec a start uses: the one named, or the default.
pub fn resolve<'a>(settings: &'a Settings, spec_id: Option<&str>) -> Result<&'a SandboxSpec> {
    match spec_id {
        None => settings
            .specs
            .first()
            .ok_or_else(|| Error::InvalidInput("no sandbox spec is configured".into())),
        Some(id) => settings.specs.iter().find(|s| s.id == id).ok_or_else(|| {
            let known: Vec<&str> = settings.specs.iter().map(|s| s.id.as_str()).collect();
            Error::InvalidInput(format!(
                "unknown sandbox_spec_id '{id}'; configured specs: {}",
                known.join(", ")
            ))
        }),
    }
}

/// Specs in configured order. Page ids are offsets: the list is the operator's
/// configuration, short and fixed while the service runs.
pub fn search(settings: &Settings, page_id: Option<&str>, limit: u32) -> SpecPage {
    let offset = page_id
        .and_then(|p| p.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let limit = limit.clamp(1, 100) as usize;
    let items: Vec<SandboxSpec> = settings
        .specs
        .iter()
        .skip(offset)
        .take(limit)
        .cloned()
        .collect();
    let next = offset.saturating_add(limit);
    SpecPage {
        items,
        next_page_id: (next < settings.specs.len()).then(|| next.to_string()),
    }
}

pub fn batch_get(settings: &Settings, ids: &[String]) -> Vec<Option<SandboxSpec>> {
    ids.iter()
        .map(|id| settings.specs.iter().find(|s| &s.id == id).cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RuntimeClass;

    fn settings(n: usize) -> Settings {
        Settings {
            runtime_api_url: String::new(),
            web_url: None,
            resource_factor: 1,
            runtime_class: RuntimeClass::Gvisor,
            start_sandbox_timeout_secs: 120,
            max_num_sandboxes: 10,
            agent_request_timeout_ms: 10_000,
            spec_policies: Vec::new(),
            default_policy: Default::default(),
            teardown_grace_secs: 30,
            history_retention_secs: 604_800,
            warm_pools: Vec::new(),
            specs: (0..n)
                .map(|i| SandboxSpec {
                    id: format!("image-{i}"),
                    command: None,
                    initial_env: vec![],
                    working_dir: "/w".into(),
                    created_at: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn resolves_the_default_and_named_specs() {
        let s = settings(3);
        assert_eq!(resolve(&s, None).map(|s| s.id.as_str()), Ok("image-0"));
        assert_eq!(
            resolve(&s, Some("image-2")).map(|s| s.id.as_str()),
            Ok("image-2")
        );
        let err = resolve(&s, Some("nope")).err();
        assert!(
            matches!(&err, Some(Error::InvalidInput(m)) if m.contains("nope") && m.contains("image-1"))
        );
        assert!(resolve(&settings(0), None).is_err());
    }

    #[test]
    fn pages_through_specs_in_order() {
        let s = settings(5);
        let p1 = search(&s, None, 2);
        assert_eq!(p1.items.len(), 2);
        assert_eq!(p1.next_page_id.as_deref(), Some("2"));
        let p3 = search(&s, Some("4"), 2);
        assert_eq!(p3.items[0].id, "image-4");
        assert_eq!(p3.next_page_id, None);
        assert_eq!(search(&s, Some("junk"), 100).items.len(), 5);
    }

    #[test]
    fn batch_get_answers_in_order_with_gaps() {
        let s = settings(2);
        let got = batch_get(&s, &["image-1".into(), "x".into(), "image-0".into()]);
        let ids: Vec<_> = got
            .iter()
            .map(|s| s.as_ref().map(|s| s.id.as_str()))
            .collect();
        assert_eq!(ids, vec![Some("image-1"), None, Some("image-0")]);
    }
}
