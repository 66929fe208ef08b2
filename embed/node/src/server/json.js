// The app-facing JSON of sandboxes, specs and documents, field for field and
// in the Rust host's order (`host/src/api/json.rs`, `conversations.rs`), so the
// two hosts answer the same bytes. Built as text where JavaScript objects would
// reorder keys (an environment map whose names look like numbers) or where a
// document must pass through exactly as the plugin wrote it.

const j = JSON.stringify;
const nullable = (v) => (v === undefined ? null : v);

/** `SandboxInfo` from the plugin's `sandbox-info`. */
export function sandboxJson(s) {
  return {
    id: s.id,
    created_by_user_id: nullable(s.createdByUserId),
    sandbox_spec_id: s.sandboxSpecId,
    status: s.status.toUpperCase(),
    session_api_key: nullable(s.sessionApiKey),
    exposed_urls: s.exposedUrls === undefined ? null : s.exposedUrls.map((u) => ({ name: u.name, url: u.url, port: u.port })),
    created_at: s.createdAt,
    status_detail: nullable(s.statusDetail),
  };
}

export const sandboxText = (s) => j(sandboxJson(s));

/** `{"items": [...], "next_page_id": ...}` from items already JSON. */
export const pageText = (items, next) => `{"items":[${items.join(',')}],"next_page_id":${j(nullable(next))}}`;

/** A list of JSON texts or nulls. */
export const listText = (items) => `[${items.map((i) => (i === undefined ? 'null' : i)).join(',')}]`;

/** An environment map in the order written (a repeated name keeps its first place and its last value). */
function envText(pairs) {
  const order = [];
  const values = new Map();
  for (const [k, v] of pairs) {
    if (!values.has(k)) order.push(k);
    values.set(k, v);
  }
  return `{${order.map((k) => `${j(k)}:${j(values.get(k))}`).join(',')}}`;
}

/** `SandboxSpecInfo` from the plugin's `sandbox-spec`. */
export const specText = (s) =>
  `{"id":${j(s.id)},"command":${j(nullable(s.command))},"created_at":${j(s.createdAt)},"initial_env":${envText(s.initialEnv)},"working_dir":${j(s.workingDir)}}`;

/** A document from the plugin, which must be JSON: anything else is a fault on our side. */
export function documentText(text) {
  JSON.parse(text);
  return text;
}

/** One status change of a sandbox's history (`host/src/api/json.rs`): a WIT cause `max-running` is `max_running`. */
export const statusChangeText = (c) =>
  j({ at: c.at, status: c.status.toUpperCase(), cause: c.cause.replaceAll('-', '_'), detail: nullable(c.detail) });

export const SUCCESS = '{"success":true}';
