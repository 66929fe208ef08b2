//! The generated WIT types to and from the domain types.

use super::sandboxd::plugin::{http, settings, storage, types};
use crate::error::Error;
use crate::model::{self, RuntimeClass, Status};
use crate::ports::{self, Bound, Credential, Method, Op, StoreError};

pub fn to_error(e: Error) -> types::Error {
    match e {
        Error::NotFound(m) => types::Error::NotFound(m),
        Error::InvalidInput(m) => types::Error::InvalidInput(m),
        Error::Conflict(m) => types::Error::Conflict(m),
        Error::Unauthorized(m) => types::Error::Unauthorized(m),
        Error::Upstream(m) => types::Error::Upstream(m),
        Error::Storage(m) => types::Error::Storage(m),
        Error::Unavailable(detail, retry_after_secs) => {
            types::Error::Unavailable(types::RetryLater {
                detail,
                retry_after_secs,
            })
        }
        Error::Internal(m) => types::Error::Internal(m),
    }
}

pub fn to_status(s: Status) -> types::SandboxStatus {
    match s {
        Status::Starting => types::SandboxStatus::Starting,
        Status::Running => types::SandboxStatus::Running,
        Status::Paused => types::SandboxStatus::Paused,
        Status::Error => types::SandboxStatus::Error,
        Status::Missing => types::SandboxStatus::Missing,
    }
}

pub fn to_info(i: model::SandboxInfo) -> types::SandboxInfo {
    types::SandboxInfo {
        id: i.id,
        created_by_user_id: i.created_by_user_id,
        sandbox_spec_id: i.sandbox_spec_id,
        status: to_status(i.status),
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

pub fn to_spec(s: model::SandboxSpec) -> types::SandboxSpec {
    types::SandboxSpec {
        id: s.id,
        command: s.command,
        initial_env: s.initial_env,
        working_dir: s.working_dir,
        created_at: s.created_at,
    }
}

pub fn from_spec(s: types::SandboxSpec) -> model::SandboxSpec {
    model::SandboxSpec {
        id: s.id,
        command: s.command,
        initial_env: s.initial_env,
        working_dir: s.working_dir,
        created_at: s.created_at,
    }
}

pub fn from_settings(c: settings::Config) -> model::Settings {
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
        spec_policies: c
            .spec_policies
            .into_iter()
            .map(|(id, p)| (id, from_policy(p)))
            .collect(),
        default_policy: from_policy(c.default_policy),
        teardown_grace_secs: c.teardown_grace_secs,
        history_retention_secs: c.history_retention_secs,
        warm_pools: c.warm_pools,
    }
}

fn from_policy(p: settings::LifecyclePolicy) -> model::LifecyclePolicy {
    model::LifecyclePolicy {
        idle_pause_secs: p.idle_pause_secs,
        max_running_secs: p.max_running_secs,
        delete_paused_after_secs: p.delete_paused_after_secs,
    }
}

pub fn to_request(r: ports::Request) -> http::Request {
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

pub fn from_response(r: http::Response) -> ports::Response {
    ports::Response {
        status: r.status,
        headers: r.headers,
        body: r.body,
    }
}

pub fn from_http_error(e: http::HttpError) -> ports::HttpError {
    match e {
        http::HttpError::Timeout => ports::HttpError::Timeout,
        http::HttpError::Connect(m) => ports::HttpError::Connect(m),
        http::HttpError::Denied(m) => ports::HttpError::Denied(m),
        http::HttpError::InvalidRequest(m) => ports::HttpError::InvalidRequest(m),
        http::HttpError::TooLarge => ports::HttpError::TooLarge,
        http::HttpError::Transport(m) => ports::HttpError::Transport(m),
    }
}

pub fn from_storage_error(e: storage::StorageError) -> StoreError {
    match e {
        storage::StorageError::Conflict(i) => StoreError::Conflict(i),
        storage::StorageError::Invalid(m) => StoreError::Invalid(m),
        storage::StorageError::Backend(m) => StoreError::Backend(m),
    }
}

pub fn to_bound(b: Bound) -> storage::Bound {
    match b {
        Bound::Unbounded => storage::Bound::Unbounded,
        Bound::Included(k) => storage::Bound::Included(k),
        Bound::Excluded(k) => storage::Bound::Excluded(k),
    }
}

pub fn to_op(op: Op) -> storage::Op {
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

pub fn from_share(s: &types::Share) -> crate::share::Share {
    crate::share::Share::new(s.of, &s.buckets)
}
