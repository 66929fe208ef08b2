//! The component's export glue: WIT types in, service calls, WIT types out.
//!
//! Nothing here decides anything. Each export builds a [`Service`] over the WIT
//! imports (which implement the [`ports`](crate::ports) traits) and converts
//! between the generated types and the domain ones.

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
});

#[cfg(feature = "faults")]
mod faults;

use exports::sandboxd::plugin::{callbacks, conversations, info, sandboxes, specs, sync};
use sandboxd::plugin::{http, log, settings, storage, types, user_context};

use crate::error::Error;
use crate::model::{self, RuntimeClass, Status};
use crate::ports::{self, Bound, Credential, Entry, Level, Method, Op, Scan, StoreError};
use crate::service::Service;

struct Component;

export!(Component);

/// Run `f` on a service acting for the current caller, with the current settings.
fn with_service<T>(f: impl FnOnce(&Service<'_>) -> Result<T, Error>) -> Result<T, types::Error> {
    let settings = from_settings(settings::get());
    let service = Service {
        store: &WitStore,
        http: &WitHttp,
        env: &WitEnv,
        settings: &settings,
        caller: user_context::current_user(),
    };
    f(&service).map_err(to_error)
}

impl info::Guest for Component {
    fn info() -> info::PluginInfo {
        info::PluginInfo {
            plugin_version: crate::PLUGIN_VERSION.to_owned(),
            contract_version: crate::CONTRACT_VERSION.to_owned(),
        }
    }
}

impl sandboxes::Guest for Component {
    fn search(page_id: Option<String>, limit: u32) -> Result<types::SandboxPage, types::Error> {
        with_service(|s| s.search(page_id.as_deref(), limit)).map(|page| types::SandboxPage {
            items: page.items.into_iter().map(to_info).collect(),
            next_page_id: page.next_page_id,
        })
    }

    fn get(id: String) -> Result<types::SandboxInfo, types::Error> {
        #[cfg(feature = "faults")]
        if let Some(outcome) = faults::on_get(&id) {
            return outcome;
        }
        with_service(|s| s.get(&id)).map(to_info)
    }

    fn batch_get(ids: Vec<String>) -> Result<Vec<Option<types::SandboxInfo>>, types::Error> {
        with_service(|s| s.batch_get(&ids))
            .map(|all| all.into_iter().map(|i| i.map(to_info)).collect())
    }

    fn start(
        spec_id: Option<String>,
        sandbox_id: Option<String>,
    ) -> Result<types::SandboxInfo, types::Error> {
        with_service(|s| s.start(spec_id.as_deref(), sandbox_id.as_deref())).map(to_info)
    }

    fn pause(id: String) -> Result<(), types::Error> {
        with_service(|s| s.pause(&id))
    }

    fn resume(id: String) -> Result<(), types::Error> {
        with_service(|s| s.resume(&id))
    }

    fn delete(id: String) -> Result<(), types::Error> {
        with_service(|s| s.delete(&id))
    }

    fn get_by_session_key(key: String) -> Result<Option<types::SandboxInfo>, types::Error> {
        with_service(|s| s.get_by_session_key(&key)).map(|i| i.map(to_info))
    }

    fn reconcile(
        orphans: sandboxes::OrphanPolicy,
        stuck_before_us: i64,
    ) -> Result<sandboxes::ReconcileSummary, types::Error> {
        let policy = match orphans {
            sandboxes::OrphanPolicy::Stop => crate::service::OrphanPolicy::Stop,
            sandboxes::OrphanPolicy::Adopt => crate::service::OrphanPolicy::Adopt,
            sandboxes::OrphanPolicy::Keep => crate::service::OrphanPolicy::Keep,
        };
        with_service(|s| s.reconcile(policy, stuck_before_us)).map(|r| {
            sandboxes::ReconcileSummary {
                runtimes: r.runtimes,
                records: r.records,
                orphans: r.orphans,
                stopped: r.stopped,
                adopted: r.adopted,
                completed: r.completed,
                removed: r.removed,
                failures: r.failures,
            }
        })
    }
}

impl specs::Guest for Component {
    fn search(page_id: Option<String>, limit: u32) -> Result<types::SpecPage, types::Error> {
        let settings = from_settings(settings::get());
        let page = crate::specs::search(&settings, page_id.as_deref(), limit);
        Ok(types::SpecPage {
            items: page.items.into_iter().map(to_spec).collect(),
            next_page_id: page.next_page_id,
        })
    }

    fn batch_get(ids: Vec<String>) -> Result<Vec<Option<types::SandboxSpec>>, types::Error> {
        let settings = from_settings(settings::get());
        Ok(crate::specs::batch_get(&settings, &ids)
            .into_iter()
            .map(|s| s.map(to_spec))
            .collect())
    }
}

impl sync::Guest for Component {
    fn poll() -> Result<sync::CycleSummary, types::Error> {
        #[cfg(feature = "faults")]
        faults::before_background_call();
        with_service(|s| s.poll()).map(|c| sync::CycleSummary {
            sandboxes: c.sandboxes,
            conversations: c.conversations,
            new_events: c.new_events,
            requests: c.requests,
            failures: c
                .failures
                .into_iter()
                .map(|(sandbox_id, reason)| sync::SyncFailure { sandbox_id, reason })
                .collect(),
            changed_conversations: c.changed_conversations,
        })
    }

    fn ingest_conversation(
        session_api_key: String,
        body: Vec<u8>,
    ) -> Result<sync::IngestSummary, types::Error> {
        with_service(|s| s.ingest_conversation(&session_api_key, &body)).map(to_ingest)
    }

    fn ingest_events(
        session_api_key: String,
        conversation_id: String,
        body: Vec<u8>,
    ) -> Result<sync::IngestSummary, types::Error> {
        with_service(|s| s.ingest_events(&session_api_key, &conversation_id, &body)).map(to_ingest)
    }
}

fn to_ingest(i: crate::sync::IngestSummary) -> sync::IngestSummary {
    sync::IngestSummary {
        new_events: i.new_events,
        changed_conversations: i.changed_conversations,
    }
}

impl conversations::Guest for Component {
    fn search(
        sandbox_id: Option<String>,
        page_id: Option<String>,
        limit: u32,
    ) -> Result<conversations::JsonPage, types::Error> {
        with_service(|s| s.search_conversations(sandbox_id.as_deref(), page_id.as_deref(), limit))
            .map(to_json_page)
    }

    fn get(id: String) -> Result<String, types::Error> {
        with_service(|s| s.get_conversation(&id))
    }

    fn search_events(
        conversation_id: String,
        q: conversations::EventQuery,
    ) -> Result<conversations::JsonPage, types::Error> {
        let query = crate::conversations::EventQuery {
            page_id: q.page_id,
            after_event_id: q.after_event_id,
            limit: q.limit,
            kind: q.kind,
            timestamp_gte: q.timestamp_gte,
            timestamp_lt: q.timestamp_lt,
            descending: q.descending,
        };
        with_service(|s| s.search_events(&conversation_id, &query)).map(to_json_page)
    }
}

fn to_json_page(p: crate::conversations::JsonPage) -> conversations::JsonPage {
    conversations::JsonPage {
        items: p.items,
        ids: p.ids,
        next_page_id: p.next_page_id,
    }
}

impl callbacks::Guest for Component {
    fn create(
        url: String,
        conversation_id: Option<String>,
        event_kinds: Option<Vec<String>>,
    ) -> Result<callbacks::Callback, types::Error> {
        with_service(|s| s.create_callback(&url, conversation_id.as_deref(), event_kinds))
            .map(to_callback)
    }

    fn all() -> Result<Vec<callbacks::Callback>, types::Error> {
        with_service(|s| s.list_callbacks()).map(|all| all.into_iter().map(to_callback).collect())
    }

    fn get(id: String) -> Result<callbacks::Callback, types::Error> {
        with_service(|s| s.get_callback(&id)).map(to_callback)
    }

    fn delete(id: String) -> Result<(), types::Error> {
        with_service(|s| s.delete_callback(&id))
    }

    fn deliveries(
        callback_id: String,
        page_id: Option<String>,
        limit: u32,
    ) -> Result<callbacks::AttemptPage, types::Error> {
        with_service(|s| s.callback_deliveries(&callback_id, page_id.as_deref(), limit)).map(
            |(items, next_page_id)| callbacks::AttemptPage {
                items: items.into_iter().map(to_attempt).collect(),
                next_page_id,
            },
        )
    }

    fn deliver_due() -> Result<callbacks::DeliverySummary, types::Error> {
        #[cfg(feature = "faults")]
        faults::before_background_call();
        with_service(|s| s.deliver_due()).map(|d| callbacks::DeliverySummary {
            attempted: d.attempted,
            delivered: d.delivered,
            failed: d.failed,
            next_due_ms: d.next_due_ms,
        })
    }
}

fn to_callback(c: crate::schema::callbacks::CallbackRecord) -> callbacks::Callback {
    callbacks::Callback {
        id: c.id,
        url: c.url,
        conversation_id: c
            .conversation_key
            .map(|k| crate::schema::conversations::dashed(&k)),
        event_kinds: c.event_kinds,
        created_by_user_id: c.created_by_user_id,
        created_at: crate::time::iso8601(c.created_at_us),
    }
}

fn to_attempt(a: crate::schema::callbacks::AttemptRecord) -> callbacks::DeliveryAttempt {
    callbacks::DeliveryAttempt {
        delivery_id: a.delivery_id,
        event_id: a.event_id,
        conversation_id: crate::schema::conversations::dashed(&a.conversation_key),
        attempt: a.attempt,
        at: crate::time::iso8601(a.at_us),
        status: a.status,
        error: a.error,
        state: match a.state.as_str() {
            "delivered" => callbacks::DeliveryState::Delivered,
            "failed" => callbacks::DeliveryState::Failed,
            _ => callbacks::DeliveryState::Pending,
        },
    }
}

// ---- imports as ports ----

struct WitHttp;

impl ports::Http for WitHttp {
    fn send(&self, request: ports::Request) -> Result<ports::Response, ports::HttpError> {
        http::send(&to_request(request))
            .map(from_response)
            .map_err(from_http_error)
    }

    fn send_batch(
        &self,
        requests: Vec<ports::Request>,
    ) -> Vec<Result<ports::Response, ports::HttpError>> {
        let requests: Vec<http::Request> = requests.into_iter().map(to_request).collect();
        http::send_batch(&requests)
            .into_iter()
            .map(|r| r.map(from_response).map_err(from_http_error))
            .collect()
    }

    fn start_batch(
        &self,
        requests: Vec<ports::Request>,
    ) -> Result<ports::BatchId, ports::HttpError> {
        let requests: Vec<http::Request> = requests.into_iter().map(to_request).collect();
        http::start_batch(&requests).map_err(from_http_error)
    }

    fn finish_batch(
        &self,
        batch: ports::BatchId,
    ) -> Result<Vec<Result<ports::Response, ports::HttpError>>, ports::HttpError> {
        http::finish_batch(batch)
            .map(|all| {
                all.into_iter()
                    .map(|r| r.map(from_response).map_err(from_http_error))
                    .collect()
            })
            .map_err(from_http_error)
    }
}

struct WitStore;

impl ports::Store for WitStore {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        storage::get(table, key).map_err(from_storage_error)
    }

    fn get_many(
        &self,
        table: &'static str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        storage::get_many(table, keys).map_err(from_storage_error)
    }

    fn scan(&self, scan: Scan) -> Result<Vec<Entry>, StoreError> {
        let request = storage::ScanRequest {
            table: scan.table.to_owned(),
            start: to_bound(scan.start),
            end: to_bound(scan.end),
            reverse: scan.reverse,
            limit: scan.limit,
        };
        storage::scan(&request)
            .map(|entries| entries.into_iter().map(|e| (e.key, e.value)).collect())
            .map_err(from_storage_error)
    }

    fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let ops: Vec<storage::Op> = ops.into_iter().map(to_op).collect();
        storage::commit(&ops).map_err(from_storage_error)
    }
}

struct WitEnv;

impl ports::Env for WitEnv {
    fn now_micros(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    }

    fn random_16(&self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        // WASI random cannot fail in a conforming host; if it did, a zero id would
        // collide at once (409) instead of passing silently.
        let _ = getrandom::fill(&mut bytes);
        bytes
    }

    fn sleep_ms(&self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }

    fn log(&self, level: Level, message: &str, fields: &[(&str, &str)]) {
        let level = match level {
            Level::Trace => log::Level::Trace,
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        log::log(level, message, &fields);
    }
}

// ---- conversions ----

fn to_error(e: Error) -> types::Error {
    match e {
        Error::NotFound(m) => types::Error::NotFound(m),
        Error::InvalidInput(m) => types::Error::InvalidInput(m),
        Error::Conflict(m) => types::Error::Conflict(m),
        Error::Unauthorized(m) => types::Error::Unauthorized(m),
        Error::Upstream(m) => types::Error::Upstream(m),
        Error::Storage(m) => types::Error::Storage(m),
        Error::Internal(m) => types::Error::Internal(m),
    }
}

fn to_info(i: model::SandboxInfo) -> types::SandboxInfo {
    types::SandboxInfo {
        id: i.id,
        created_by_user_id: i.created_by_user_id,
        sandbox_spec_id: i.sandbox_spec_id,
        status: match i.status {
            Status::Starting => types::SandboxStatus::Starting,
            Status::Running => types::SandboxStatus::Running,
            Status::Paused => types::SandboxStatus::Paused,
            Status::Error => types::SandboxStatus::Error,
            Status::Missing => types::SandboxStatus::Missing,
        },
        session_api_key: i.session_api_key,
        exposed_urls: i.exposed_urls.map(|urls| {
            urls.into_iter()
                .map(|u| types::ExposedUrl {
                    name: u.name.to_owned(),
                    url: u.url,
                    port: u.port,
                })
                .collect()
        }),
        created_at: i.created_at,
        status_detail: i.status_detail,
    }
}

fn to_spec(s: model::SandboxSpec) -> types::SandboxSpec {
    types::SandboxSpec {
        id: s.id,
        command: s.command,
        initial_env: s.initial_env,
        working_dir: s.working_dir,
        created_at: s.created_at,
    }
}

fn from_spec(s: types::SandboxSpec) -> model::SandboxSpec {
    model::SandboxSpec {
        id: s.id,
        command: s.command,
        initial_env: s.initial_env,
        working_dir: s.working_dir,
        created_at: s.created_at,
    }
}

fn from_settings(c: settings::Config) -> model::Settings {
    model::Settings {
        runtime_api_url: c.runtime_api_url,
        web_url: c.web_url,
        resource_factor: c.resource_factor,
        runtime_class: match c.runtime_class {
            settings::RuntimeClass::Gvisor => RuntimeClass::Gvisor,
            settings::RuntimeClass::Sysbox => RuntimeClass::Sysbox,
        },
        start_sandbox_timeout_secs: c.start_sandbox_timeout_secs,
        max_num_sandboxes: c.max_num_sandboxes,
        specs: c.specs.into_iter().map(from_spec).collect(),
        agent_request_timeout_ms: c.agent_request_timeout_ms,
    }
}

fn to_request(r: ports::Request) -> http::Request {
    http::Request {
        method: match r.method {
            Method::Get => http::Method::Get,
            Method::Post => http::Method::Post,
            Method::Put => http::Method::Put,
            Method::Patch => http::Method::Patch,
            Method::Delete => http::Method::Delete,
        },
        url: r.url,
        headers: r.headers,
        body: r.body,
        credential: match r.credential {
            Credential::None => http::Credential::None,
            Credential::RuntimeApi => http::Credential::RuntimeApi,
            Credential::CallbackSignature(id) => http::Credential::CallbackSignature(id),
        },
        timeout_ms: r.timeout_ms,
    }
}

fn from_response(r: http::Response) -> ports::Response {
    ports::Response {
        status: r.status,
        headers: r.headers,
        body: r.body,
    }
}

fn from_http_error(e: http::HttpError) -> ports::HttpError {
    match e {
        http::HttpError::Timeout => ports::HttpError::Timeout,
        http::HttpError::Connect(m) => ports::HttpError::Connect(m),
        http::HttpError::Denied(m) => ports::HttpError::Denied(m),
        http::HttpError::InvalidRequest(m) => ports::HttpError::InvalidRequest(m),
        http::HttpError::TooLarge => ports::HttpError::TooLarge,
        http::HttpError::Transport(m) => ports::HttpError::Transport(m),
    }
}

fn from_storage_error(e: storage::StorageError) -> StoreError {
    match e {
        storage::StorageError::Conflict(i) => StoreError::Conflict(i),
        storage::StorageError::Invalid(m) => StoreError::Invalid(m),
        storage::StorageError::Backend(m) => StoreError::Backend(m),
    }
}

fn to_bound(b: Bound) -> storage::Bound {
    match b {
        Bound::Unbounded => storage::Bound::Unbounded,
        Bound::Included(k) => storage::Bound::Included(k),
        Bound::Excluded(k) => storage::Bound::Excluded(k),
    }
}

fn to_op(op: Op) -> storage::Op {
    match op {
        Op::Put { table, key, value } => storage::Op::Put(storage::PutOp {
            table: table.to_owned(),
            key,
            value,
        }),
        Op::Delete { table, key } => storage::Op::Delete(storage::KeyRef {
            table: table.to_owned(),
            key,
        }),
        Op::RequireAbsent { table, key } => storage::Op::RequireAbsent(storage::KeyRef {
            table: table.to_owned(),
            key,
        }),
        Op::RequirePresent { table, key } => storage::Op::RequirePresent(storage::KeyRef {
            table: table.to_owned(),
            key,
        }),
        Op::RequireValue { table, key, value } => storage::Op::RequireValue(storage::ValueRef {
            table: table.to_owned(),
            key,
            value,
        }),
    }
}
