// The typed public API of @sandboxd/node: the plugin's exports as methods,
// the adapters an embedder may replace, and the values in WIT's JavaScript
// shapes as jco lifts them (records as objects with camelCase fields,
// `option` as `undefined`, `list<u8>` as `Uint8Array`, variants as
// `{ tag, val }`, enums as their kebab-case names).

// ---- values (wit/types.wit and friends) ----

export type SandboxStatus = 'starting' | 'running' | 'paused' | 'error' | 'missing';

export interface ExposedUrl {
  name: string;
  url: string;
  port: number;
}

export interface SandboxInfo {
  id: string;
  createdByUserId?: string;
  sandboxSpecId: string;
  status: SandboxStatus;
  sessionApiKey?: string;
  exposedUrls?: ExposedUrl[];
  /** ISO-8601 UTC with `Z`. */
  createdAt: string;
  statusDetail?: string;
}

export interface SandboxPage {
  items: SandboxInfo[];
  nextPageId?: string;
}

export interface SandboxSpec {
  id: string;
  command?: string[];
  initialEnv: [string, string][];
  workingDir: string;
  createdAt: string;
}

export interface SpecPage {
  items: SandboxSpec[];
  nextPageId?: string;
}

export type OrphanPolicy = 'stop' | 'adopt' | 'keep';

export interface StatusCounts {
  starting: number;
  running: number;
  paused: number;
  error: number;
  missing: number;
}

export interface ReconcileSummary {
  runtimes: number;
  records: number;
  orphans: number;
  stopped: number;
  adopted: number;
  completed: number;
  removed: number;
  failures: [string, string][];
  statuses: StatusCounts;
}

/** A page of JSON documents (conversations, or events exactly as the agent server sent them). */
export interface JsonPage {
  items: string[];
  ids: string[];
  nextPageId?: string;
}

/**
 * A search of one conversation's events, in timestamp order (the agent
 * server's `events/search` parameters). Since contract 0.4.0 it has no
 * `afterEventId` (passing one is a `TypeError`): what a stream sends after an
 * event is `streamEvents`, in arrival order.
 */
export interface EventQuery {
  pageId?: string;
  /** 1 to 100 (default 100). */
  limit?: number;
  kind?: string;
  timestampGte?: string;
  timestampLt?: string;
  descending?: boolean;
}

/**
 * The part of the background work one host takes care of when several share
 * one store (wit/types.wit `share`): a sandbox's bucket is FNV-1a 64 of its id
 * modulo `of`, a delivery's the same of its delivery id; a background call acts
 * only on the buckets listed. A lone host passes `LONE_SHARE`.
 */
export interface Share {
  /** 1 to 65535. */
  of: number;
  /** Each below `of`. */
  buckets: number[];
}

/** Every bucket, as one bucket of one: what a host that shares its store with no other passes (the default). */
export const LONE_SHARE: Readonly<Share>;

export interface StreamPosition {
  conversationId: string;
  afterEventId?: string;
}

export interface SyncFailure {
  sandboxId: string;
  reason: string;
}

export interface CycleSummary {
  sandboxes: number;
  conversations: number;
  newEvents: number;
  requests: number;
  failures: SyncFailure[];
  changedConversations: string[];
}

export type SandboxStatusName = 'starting' | 'running' | 'paused' | 'error' | 'missing';

/** Why a sandbox's status changed (contract 0.5.0). */
export type Cause = 'user' | 'limit' | 'idle' | 'max-running' | 'ttl' | 'start-timeout' | 'runtime' | 'reconcile' | 'wake';

export interface StatusChange {
  /** ISO-8601 in UTC with a `Z` suffix. */
  at: string;
  status: SandboxStatusName;
  previousStatus?: SandboxStatusName;
  cause: Cause;
  detail?: string;
}

export interface HistoryPage {
  items: StatusChange[];
  nextPageId?: string;
}

export interface PassSummary {
  sandboxes: number;
  observed: number;
  paused: number;
  deleted: number;
  keysRetired: number;
  historiesPurged: number;
  warmStarted: number;
  warmReady: number;
  failures: [string, string][];
}

/** Seconds; none or 0 is off. */
export interface LifecyclePolicyInput {
  idlePauseSecs?: number;
  maxRunningSecs?: number;
  deletePausedAfterSecs?: number;
}

export interface IngestSummary {
  newEvents: number;
  changedConversations: string[];
}

export interface Callback {
  id: string;
  url: string;
  conversationId?: string;
  eventKinds?: string[];
  createdByUserId?: string;
  createdAt: string;
}

export type DeliveryState = 'pending' | 'delivered' | 'failed';

export interface DeliveryAttempt {
  deliveryId: string;
  eventId: string;
  conversationId: string;
  attempt: number;
  at: string;
  status?: number;
  error?: string;
  state: DeliveryState;
}

export interface AttemptPage {
  items: DeliveryAttempt[];
  nextPageId?: string;
}

export interface DeliverySummary {
  attempted: number;
  delivered: number;
  failed: number;
  nextDueMs?: bigint;
}

export interface PluginInfo {
  pluginVersion: string;
  contractVersion: string;
}

// ---- failures ----

/** The plugin answered with its `error` variant. */
export class PluginError extends Error {
  tag: 'not-found' | 'invalid-input' | 'conflict' | 'unauthorized' | 'upstream' | 'storage' | 'internal';
}

/** The plugin gave no answer: past its deadline, past a limit, or trapped (the message has an error id). */
export class CallError extends Error {
  kind: 'timeout' | 'limit' | 'trap';
}

// ---- adapters ----

export type Bound = { tag: 'unbounded' } | { tag: 'included'; val: Uint8Array } | { tag: 'excluded'; val: Uint8Array };

export interface ScanRequest {
  table: string;
  start: Bound;
  end: Bound;
  reverse: boolean;
  limit: number;
}

export interface Entry {
  key: Uint8Array;
  value: Uint8Array;
}

export type Op =
  | { tag: 'put'; val: { table: string; key: Uint8Array; value: Uint8Array } }
  | { tag: 'delete'; val: { table: string; key: Uint8Array } }
  | { tag: 'require-absent'; val: { table: string; key: Uint8Array } }
  | { tag: 'require-present'; val: { table: string; key: Uint8Array } }
  | { tag: 'require-value'; val: { table: string; key: Uint8Array; value: Uint8Array } };

type MaybePromise<T> = T | Promise<T>;

/**
 * An ordered key-value store (wit/storage.wit). The host checks every
 * request against the contract's limits before an adapter sees it. Keys are
 * ordered bytewise. `commit` applies all ops atomically and durably, checking
 * each precondition against the state before the commit; a failed one throws
 * `new StorageError('conflict', index)` and writes nothing. Anything else an
 * adapter throws reaches the plugin as `backend`. With `{ durable: false }`
 * (the contract's `commit-relaxed`) the commit may be answered once visible,
 * before it is on disk, as long as a later durable commit makes it durable
 * too; an adapter may ignore the option and always commit durably.
 */
export interface StorageAdapter {
  get(table: string, key: Uint8Array): MaybePromise<Uint8Array | undefined>;
  getMany(table: string, keys: Uint8Array[]): MaybePromise<(Uint8Array | undefined)[]>;
  scan(request: ScanRequest): MaybePromise<Entry[]>;
  commit(ops: Op[], options?: { durable?: boolean }): MaybePromise<void>;
  close?(): void;
}

export class StorageError extends Error {
  constructor(tag: 'conflict' | 'invalid' | 'backend', val: number | string);
  tag: 'conflict' | 'invalid' | 'backend';
  val: number | string;
}

export class MemoryStore implements StorageAdapter {
  get(table: string, key: Uint8Array): Uint8Array | undefined;
  getMany(table: string, keys: Uint8Array[]): (Uint8Array | undefined)[];
  scan(request: ScanRequest): Entry[];
  commit(ops: Op[]): void;
  close(): void;
}

/** One SQLite file (`node:sqlite`), WAL with full sync, group commits. */
export class SqliteStore implements StorageAdapter {
  constructor(path: string);
  get(table: string, key: Uint8Array): Uint8Array | undefined;
  getMany(table: string, keys: Uint8Array[]): (Uint8Array | undefined)[];
  scan(request: ScanRequest): Entry[];
  commit(ops: Op[], options?: { durable?: boolean }): Promise<void>;
  close(): void;
}

/** A request after the host's policy: credentials attached, destination allowed. */
export interface TransportRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  headers: [string, string][];
  body?: Uint8Array;
  /** The host's deadline: stop when it aborts. */
  signal: AbortSignal;
  /** Stop reading past this many bytes (fail with `too-large`). */
  maxResponseBytes: number;
}

export interface HttpResponse {
  status: number;
  /** Lower-case names. */
  headers: [string, string][];
  body: Uint8Array;
}

/**
 * Moves bytes; decides nothing. Rejects with an `HttpFailure` naming the
 * contract's `http-error` case (anything else becomes `transport`).
 */
export interface HttpTransport {
  send(request: TransportRequest): Promise<HttpResponse>;
  close?(): void;
}

export class HttpFailure extends Error {
  constructor(tag: 'timeout' | 'connect' | 'denied' | 'invalid-request' | 'too-large' | 'transport', val?: string);
  tag: string;
  val?: string;
}

/** The default transport: node:http/https, keep-alive, DNS answers filtered by the egress policy. */
export function nodeTransport(options?: { connectTimeoutMs?: number; userAgent?: string }): HttpTransport;

/** The host's secret key: callback secrets and signatures derive from it, as on the Rust host. */
export class HostKey {
  /** `data_dir/host.key`, created (0600) on first use. */
  static open(dataDir: string): HostKey;
  static ephemeral(): HostKey;
  secret(callbackId: string): string;
  signature(callbackId: string, body: Uint8Array): string;
}

export class Logger {
  /** `filter` as `SANDBOXD_LOG` (`info`, `warn,plugin=debug`, `off`). */
  constructor(options?: { filter?: string; write?: (line: string) => void });
  log(level: 'trace' | 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>, target?: string): void;
}

// ---- the host ----

export interface SpecInput {
  id: string;
  command?: string[];
  workingDir?: string;
  initialEnv?: Record<string, string> | [string, string][];
  /** This spec's lifecycle policy, over `SandboxdOptions.lifecycle`'s. */
  idlePauseSecs?: number;
  maxRunningSecs?: number;
  deletePausedAfterSecs?: number;
  /** Sandboxes of this spec kept started ahead (its warm pool), kept full by `lifecyclePass()`. */
  warm?: number;
}

export interface SandboxdOptions {
  /** The plugin component: a path or its bytes. Default: the Rust build's (`defaultPluginPath()`). */
  plugin?: string | Uint8Array;
  runtime: {
    apiUrl: string;
    apiKey: string;
    resourceFactor?: 1 | 2 | 4 | 8;
    runtimeClass?: 'gvisor' | 'sysbox';
    startSandboxTimeoutSecs?: number;
    maxNumSandboxes?: number;
  };
  /** Public URL of this service, when agent servers are to call back. */
  webUrl?: string;
  /** The first is the default; none: the OpenHands agent server image. */
  specs?: SpecInput[];
  /** Default: a `MemoryStore`. */
  storage?: StorageAdapter;
  /** Default: `nodeTransport()`. */
  transport?: HttpTransport;
  /** Default: an ephemeral key (callback secrets change with every start). */
  hostKey?: HostKey;
  /** The egress policy's rules; default `['@runtime', '@agents', '@callbacks']`. */
  allowedHosts?: string[];
  http?: { timeoutMs?: number; connectTimeoutMs?: number; maxResponseBytes?: number };
  sync?: { concurrency?: number; requestTimeoutMs?: number };
  /** The lifecycle policies (all off by default), the teardown grace (30 s) and the history retention (7 days). */
  lifecycle?: LifecyclePolicyInput & { teardownGraceSecs?: number; historyRetentionSecs?: number };
  limits?: {
    callTimeoutMs?: number;
    pollTimeoutMs?: number;
    memoryLimitBytes?: number;
    maxInstances?: number;
    callHttpRequests?: number;
    pollHttpRequests?: number;
    callWriteBytes?: number;
    pollWriteBytes?: number;
    callLogLines?: number;
    pollLogLines?: number;
  };
  logger?: Logger;
}

/** The exports, scoped to one caller. */
export interface ScopedApi {
  sandboxes: {
    search(pageId?: string, limit?: number): Promise<SandboxPage>;
    get(id: string): Promise<SandboxInfo>;
    batchGet(ids: string[]): Promise<(SandboxInfo | undefined)[]>;
    start(specId?: string, sandboxId?: string): Promise<SandboxInfo>;
    pause(id: string): Promise<void>;
    resume(id: string): Promise<void>;
    delete(id: string): Promise<void>;
    getBySessionKey(sessionApiKey: string): Promise<SandboxInfo | undefined>;
    /** Only runtimes and records in `share` (default `LONE_SHARE`) are repaired. */
    reconcile(orphans: OrphanPolicy, stuckBeforeUs: bigint | number, share?: Share): Promise<ReconcileSummary>;
  };
  specs: {
    search(pageId?: string, limit?: number): Promise<SpecPage>;
    batchGet(ids: string[]): Promise<(SandboxSpec | undefined)[]>;
  };
  sync: {
    ingestConversation(sessionApiKey: string, body: Uint8Array | string): Promise<IngestSummary>;
    ingestEvents(sessionApiKey: string, conversationId: string, body: Uint8Array | string): Promise<IngestSummary>;
  };
  conversations: {
    search(sandboxId?: string, pageId?: string, limit?: number): Promise<JsonPage>;
    get(id: string): Promise<string>;
    searchEvents(conversationId: string, query: EventQuery): Promise<JsonPage>;
    /**
     * Events stored after `afterEventId` (none, or an unknown one: from the
     * first), at most `limit` (1 to 100, default 100), in the order they were
     * stored, which is not their timestamps' order: what an event stream sends,
     * so that an event that arrives late with an older timestamp is not passed over.
     */
    streamEvents(conversationId: string, afterEventId?: string, limit?: number): Promise<JsonPage>;
    streamStart(conversationId: string, lastEventId?: string): Promise<StreamPosition>;
  };
  callbacks: {
    /** The host picks the id and records the URL's origin first; `secret` is shown this once. */
    create(subscription: { url: string; conversationId?: string; eventKinds?: string[] }): Promise<Callback & { secret: string }>;
    all(): Promise<Callback[]>;
    get(id: string): Promise<Callback>;
    delete(id: string): Promise<void>;
    deliveries(callbackId: string, pageId?: string, limit?: number): Promise<AttemptPage>;
  };
  lifecycle: {
    /** The sandbox's status changes, newest first; kept after its deletion for the retention. */
    history(id: string, pageId?: string, limit?: number): Promise<HistoryPage>;
  };
}

export class Sandboxd {
  readonly plugin: {
    pluginVersion: string;
    contractVersion: string;
    /** Lower-case hex SHA-256 of the component. */
    sha256: string;
    source: string;
    loadedAt: Date;
    transpileMillis: number;
  };
  /** The limits calls run within. */
  readonly limits: Required<NonNullable<SandboxdOptions['limits']>> & Record<string, number>;
  /** `{ user }` sees only that user's sandboxes; `{}` (an admin) sees all. */
  as(caller?: { user?: string }): ScopedApi;
  /** One poll cycle over the running sandboxes in `share` (default `LONE_SHARE`; background limits). */
  poll(share?: Share): Promise<CycleSummary>;
  /** Send the callback deliveries in `share` that are due (default `LONE_SHARE`; background limits). */
  deliverDue(share?: Share): Promise<DeliverySummary>;
  /** Repair the store against the runtime's `/list`, for what is in `share` (default `LONE_SHARE`; background limits). */
  reconcile(orphans: OrphanPolicy, stuckBeforeUs: bigint | number, share?: Share): Promise<ReconcileSummary>;
  /** One lifecycle policy pass over the sandboxes in `share` (default `LONE_SHARE`; background limits). */
  lifecyclePass(share?: Share): Promise<PassSummary>;
  /** Resume a paused sandbox because a request reached it (cause `wake`). */
  wake(id: string): Promise<SandboxInfo>;
  info(): Promise<PluginInfo>;
  close(): Promise<void>;
}

export function createSandboxd(options: SandboxdOptions): Promise<Sandboxd>;

/** Where the Rust build publishes the plugin: `<cargo target dir>/sandboxd-plugin/sandboxd_plugin.wasm`. */
export function defaultPluginPath(env?: Record<string, string | undefined>): string;

export const CONTRACT_VERSION: string;
