//! The read operations: search, get, batch get, lookup by session key.

use std::collections::{HashMap, HashSet};

use super::Service;
use crate::error::{Error, Result};
use crate::model::{SandboxInfo, SandboxPage};
use crate::paging;
use crate::ports::Level;
use crate::runtime::{Runtime, RuntimeError};
use crate::schema::{self, SandboxRecord};
use crate::session_key;

/// Most items a page or a batch may hold.
pub const MAX_PAGE: u32 = 100;

impl Service<'_> {
    /// Sandboxes newest first: one range scan of the caller's index, one batch
    /// read of the records, at most one runtime batch call.
    pub fn search(&self, page_id: Option<&str>, limit: u32) -> Result<SandboxPage> {
        let limit = limit.clamp(1, MAX_PAGE);
        let (table, prefix) = self.scope_index();
        let (rows, next_page_id) = paging::read_page(self.store, table, &prefix, page_id, limit)?;
        let ids: Vec<&str> = rows
            .iter()
            .filter_map(|(key, _)| schema::id_of_order_key(key.get(prefix.len()..)?))
            .collect();
        let records = self.load_many(&ids)?;
        let lookup = self.runtimes_of(&records);
        Ok(SandboxPage {
            items: records.iter().map(|r| lookup.info(self, r)).collect(),
            next_page_id,
        })
    }

    /// One sandbox with its live status; a failing runtime API makes it `MISSING`.
    pub fn get(&self, id: &str) -> Result<SandboxInfo> {
        let record = self.load_visible(id)?;
        Ok(self.runtime_of(&record.id).info(self, &record))
    }

    /// Sandboxes by id in the order asked, none where unknown or not visible.
    pub fn batch_get(&self, ids: &[String]) -> Result<Vec<Option<SandboxInfo>>> {
        if ids.len() > MAX_PAGE as usize {
            return Err(Error::InvalidInput(format!(
                "at most {MAX_PAGE} ids per request, got {}",
                ids.len()
            )));
        }
        let mut unique: Vec<&str> = Vec::with_capacity(ids.len());
        let mut seen = HashSet::new();
        for id in ids {
            if super::is_valid_id(id) && seen.insert(id.as_str()) {
                unique.push(id);
            }
        }
        let records: HashMap<String, SandboxRecord> = self
            .load_many(&unique)?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        let found: Vec<SandboxRecord> = unique
            .iter()
            .filter_map(|id| records.get(*id).cloned())
            .collect();
        let lookup = self.runtimes_of(&found);
        Ok(ids
            .iter()
            .map(|id| records.get(id).map(|r| lookup.info(self, r)))
            .collect())
    }

    /// The sandbox whose current session key is `key` (or whose old key it is,
    /// within the teardown grace), if the caller may see it.
    pub fn get_by_session_key(&self, key: &str) -> Result<Option<SandboxInfo>> {
        let Some(record) = self.sandbox_for_key(key)? else {
            return Ok(None);
        };
        Ok(Some(self.runtime_of(&record.id).info(self, &record)))
    }

    /// The stored sandbox whose current session key is `key`, if the caller may
    /// see it. Only the key's hash is compared.
    pub(crate) fn sandbox_for_key(&self, key: &str) -> Result<Option<SandboxRecord>> {
        if key.is_empty() {
            return Ok(None);
        }
        let hash = session_key::hash(key);
        let Some(id) = self.store.get(schema::BY_KEY_HASH, hash.as_bytes())? else {
            return Ok(None);
        };
        let id = String::from_utf8_lossy(&id).into_owned();
        let Some(record) = self.find_visible(&id)? else {
            return Ok(None);
        };
        // The index and the record change together; this guards against a key
        // that was rotated away between the two reads. A paused sandbox's old
        // key still works until its teardown grace ends (the pass then drops
        // its index entry).
        let current = record.session_api_key_hash.as_deref() == Some(hash.as_str());
        let in_grace = record
            .retired_key
            .as_ref()
            .is_some_and(|k| k.hash == hash && self.env.now_micros() < k.until_us);
        Ok((current || in_grace).then_some(record))
    }

    /// Records of `ids` visible to the caller, in the order of `ids`. A record that
    /// cannot be read is logged and left out rather than failing the whole page.
    pub(crate) fn load_many(&self, ids: &[&str]) -> Result<Vec<SandboxRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Vec<u8>> = ids.iter().map(|id| id.as_bytes().to_vec()).collect();
        let values = self.store.get_many(schema::SANDBOXES, &keys)?;
        let mut records = Vec::with_capacity(ids.len());
        for (id, value) in ids.iter().zip(values) {
            let Some(bytes) = value else { continue };
            match SandboxRecord::decode(&bytes) {
                Ok(r) if r.visible_to(self.caller()) => records.push(r),
                Ok(_) => {}
                Err(e) => self.log(
                    Level::Error,
                    "unreadable sandbox record",
                    &[("sandbox_id", id), ("error", &e.to_string())],
                ),
            }
        }
        Ok(records)
    }

    /// The runtime of one sandbox, or why the runtime API could not say (logged).
    pub(super) fn runtime_of(&self, id: &str) -> Lookup {
        match self.runtime().get(id) {
            Ok(runtime) => Lookup {
                runtimes: runtime.map(|rt| (id.to_owned(), rt)).into_iter().collect(),
                failure: None,
            },
            Err(e) => self.failed_lookup(&e, &[("sandbox_id", id)]),
        }
    }

    /// The runtimes of many sandboxes in one batch call (none for an empty
    /// list), or why the runtime API could not say (logged).
    pub(super) fn runtimes_of(&self, records: &[SandboxRecord]) -> Lookup {
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        match self.runtime().batch(&ids) {
            Ok(runtimes) => Lookup {
                runtimes,
                failure: None,
            },
            Err(e) => self.failed_lookup(&e, &[]),
        }
    }

    fn failed_lookup(&self, e: &RuntimeError, fields: &[(&str, &str)]) -> Lookup {
        let error = e.to_string();
        let mut fields = fields.to_vec();
        fields.push(("error", &error));
        self.log(
            Level::Warn,
            "runtime lookup failed; reporting MISSING",
            &fields,
        );
        Lookup {
            runtimes: HashMap::new(),
            failure: Some(format!("the runtime API could not be asked: {error}")),
        }
    }
}

/// What the runtime API said about some sandboxes.
pub(super) struct Lookup {
    pub(super) runtimes: HashMap<String, Runtime>,
    /// Why it said nothing, if it failed: every sandbox is then `MISSING`, with
    /// this as its `status_detail`.
    pub(super) failure: Option<String>,
}

impl Lookup {
    pub(super) fn info(&self, service: &Service<'_>, record: &SandboxRecord) -> SandboxInfo {
        let mut info = service.to_info(record, self.runtimes.get(&record.id));
        if let Some(why) = &self.failure {
            info.status_detail = Some(why.clone());
        }
        info
    }
}
