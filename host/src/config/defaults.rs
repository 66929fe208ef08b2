//! Every configuration default, with the reason for it. The upstream service's
//! defaults are kept where it has one, so a migrated deployment behaves the same.

use std::time::Duration;

/// Loopback only: with `auth.mode = "none"` anyone who can connect acts as the
/// single user, so the default must not be reachable from the network.
pub const LISTEN: &str = "127.0.0.1:3000";

/// Relative to the working directory, like a project-local cache.
pub const DATA_DIR: &str = ".sandboxd";

/// The store's page cache. redb's own default (1 GiB) would let the resident
/// size grow with the data for a long time; 64 MiB holds the hot part (indexes,
/// recent events) of a store of millions of events.
pub const STORE_CACHE_MB: usize = 64;

/// Upstream default.
pub const RESOURCE_FACTOR: u8 = 1;
/// Upstream default.
pub const START_SANDBOX_TIMEOUT_SECS: u32 = 120;
/// Upstream default.
pub const MAX_NUM_SANDBOXES: u32 = 10;
/// Upstream default.
pub const POLLING_INTERVAL_SECS: u32 = 15;
/// Between reconciliation passes: a runtime left without a record (or a record
/// left half-way) is repaired within a minute, for one `GET /list` a minute.
pub const RECONCILE_INTERVAL_SECS: u32 = 60;
/// How long after a plugin call's deadline a start it left half-way is taken
/// for abandoned (the call is surely over by then).
pub const STUCK_START_GRACE: Duration = Duration::from_secs(5);

/// The spec used when the operator configures none: the OpenHands agent server
/// image, as upstream ships it.
pub const SPEC_ID: &str = "ghcr.io/openhands/agent-server:latest-python";
pub const SPEC_COMMAND: [&str; 3] = ["/usr/local/bin/openhands-agent-server", "--port", "60000"];
pub const SPEC_WORKING_DIR: &str = "/workspace/project";

/// The spec of the embedded local runtime when none is configured: a tiny HTTP
/// server from Python's standard library, so a fresh clone runs a sandbox with
/// nothing but `python3`. It answers `/alive` like an agent server, and checks the
/// session key on `/api/…` like one.
pub const LOCAL_SPEC_ID: &str = "local/python-http";
pub const LOCAL_SPEC_SCRIPT: &str = r#"import http.server, json, os, sys
KEY = os.environ.get("SESSION_API_KEY", "")
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/api/") and self.headers.get("X-Session-API-Key") != KEY:
            status, body = 401, {"detail": "Unauthorized"}
        else:
            status, body = 200, {"status": "ok", "path": self.path, "sandbox": os.getcwd()}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

/// A local sandbox still not ready after this long is an error (and killed);
/// upstream's `start_sandbox_timeout` is the same idea, seen from the app.
pub const LOCAL_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a local sandbox has between SIGTERM and SIGKILL.
pub const LOCAL_STOP_GRACE: Duration = Duration::from_secs(10);

/// What a local runtime's readiness probe asks for by default: the agent
/// server's unauthenticated liveness route.
pub const PROBE_PATH: &str = "/alive";

/// The header a trusted gateway puts the authenticated user id in.
pub const USER_HEADER: &str = "x-user-id";

/// A plugin call that takes longer is cut off. Generous, because a start waits
/// for the runtime API, which may take tens of seconds under load.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(90);

/// Linear memory one plugin call may use. The plugin needs a few MiB for a page
/// of 100 sandboxes; this leaves room for large answers without letting a
/// runaway call eat the machine.
pub const MEMORY_LIMIT_BYTES: usize = 64 << 20;

/// Plugin calls running at once (each holds one instance slot of the pooling
/// allocator); more wait for a slot rather than fail.
pub const MAX_INSTANCES: u32 = 256;

/// Deadline of one outbound request unless the plugin asks for less. The
/// runtime API's own upstream timeout for a start is tens of seconds.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
pub const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response body handed to the plugin.
pub const HTTP_MAX_RESPONSE_BYTES: usize = 16 << 20;
/// Requests of one `send-batch` in flight at once: how many agent servers a poll
/// cycle talks to at the same time.
pub const SYNC_CONCURRENCY: usize = 32;
/// Deadline of one request to an agent server while syncing: a dead one costs
/// this much of a cycle, no more.
pub const SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A poll cycle that takes longer is cut off (the next one starts over from the
/// stored cursors, so nothing is lost).
pub const POLL_TIMEOUT: Duration = Duration::from_secs(600);

/// Outbound requests one API call may send: an API call asks the runtime a few
/// times; a thousand means a plugin in a loop.
pub const CALL_HTTP_REQUESTS: u64 = 1_000;
/// Outbound requests one poll cycle or delivery run may send: a few per
/// conversation of every running sandbox, with room for very large fleets.
pub const POLL_HTTP_REQUESTS: u64 = 1_000_000;
/// Bytes one API call may write to storage (keys and values of its puts).
pub const CALL_WRITE_BYTES: u64 = 64 << 20;
/// Bytes one poll cycle may write: a first sync of a large fleet stores every
/// event it finds.
pub const POLL_WRITE_BYTES: u64 = 4 << 30;
/// Log lines kept from one API call; the rest are dropped and counted.
pub const CALL_LOG_LINES: u64 = 200;
/// Log lines kept from one background call.
pub const POLL_LOG_LINES: u64 = 20_000;
