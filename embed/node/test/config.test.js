// The configuration: the Rust host's keys, overrides, defaults and messages;
// keys this host lacks refused by name.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../src/config/index.js';

const RUNTIME = { SANDBOXD_RUNTIME_API_URL: 'http://127.0.0.1:8100', SANDBOXD_RUNTIME_API_KEY: 'dev-key-0123456789' };

function load(toml, env = RUNTIME) {
  const path = join(mkdtempSync(join(tmpdir(), 'sandboxd-node-config-')), 'sandboxd.toml');
  writeFileSync(path, toml);
  return loadConfig(path, env);
}

function problems(toml, env = RUNTIME) {
  try {
    load(toml, env);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems;
  }
  assert.fail('expected the configuration to be refused');
}

test('defaults are the Rust host’s', () => {
  const c = load('');
  assert.deepEqual(c.listen, { host: '127.0.0.1', port: 3000 });
  assert.equal(c.dataDir, '.sandboxd');
  assert.equal(c.runtime.apiUrl, 'http://127.0.0.1:8100');
  assert.deepEqual(
    [c.runtime.resourceFactor, c.runtime.runtimeClass, c.runtime.startSandboxTimeoutSecs, c.runtime.maxNumSandboxes, c.runtime.pollingIntervalSecs, c.runtime.orphans, c.runtime.reconcileIntervalSecs],
    [1, 'gvisor', 120, 10, 15, 'stop', 60],
  );
  assert.deepEqual(c.sync, { mode: 'auto', concurrency: 32, requestTimeoutMs: 10_000 });
  assert.equal(c.polls, true, 'no web_url: poll');
  assert.equal(load('web_url = "https://app.example/"').polls, false);
  assert.equal(load('web_url = "https://app.example/"').webUrl, 'https://app.example');
  assert.equal(load('web_url = "http://localhost:3000"').polls, true);
  assert.deepEqual(c.http, { timeoutMs: 30_000, connectTimeoutMs: 5_000, maxResponseBytes: 16 << 20 });
});

test('one sync plan: whether sandboxes are told to call back, and whether they are polled (the Rust host’s SyncPlan)', () => {
  const plan = (mode, url) => {
    const c = load(`${url ? `web_url = "${url}"\n` : ''}[sync]\nmode = "${mode}"`);
    return [c.callbackUrl, c.polls];
  };
  const pub = 'https://app.example';
  const local = 'http://localhost:3000';
  assert.deepEqual(plan('auto', undefined), [undefined, true]);
  assert.deepEqual(plan('auto', pub), [pub, false]);
  assert.deepEqual(plan('auto', local), [local, true]);
  assert.deepEqual(plan('poll', pub), [undefined, true], 'polled sandboxes are not told to call back');
  assert.deepEqual(plan('webhook', pub), [pub, false]);
  assert.deepEqual(plan('webhook', undefined), [undefined, false]);
});

test('[http] as the Rust host reads it', () => {
  const c = load('[http]\ntimeout = 0.5\nconnect_timeout = 2\nmax_response_mb = 1');
  assert.deepEqual(c.http, { timeoutMs: 500, connectTimeoutMs: 2_000, maxResponseBytes: 1 << 20 });
  assert.deepEqual(problems('[http]\ntimeout = 0\nmax_response_mb = 2000\nretries = 3'), [
    'http.retries: unknown key',
    'http.timeout: 0 is out of range; use a number of seconds from 0.001 up to 86400',
    'http.max_response_mb: 2000 is out of range; use 1 to 1024',
  ]);
});

test('the environment overrides the file, and empty SANDBOXD_WEB_URL unsets it', () => {
  const c = load('listen = "127.0.0.1:1"\nweb_url = "https://a.example"\n[runtime]\nmax_num_sandboxes = 3', {
    ...RUNTIME,
    SANDBOXD_LISTEN: '127.0.0.1:0',
    SANDBOXD_MAX_NUM_SANDBOXES: ' 7 ',
    SANDBOXD_WEB_URL: '',
    SANDBOXD_SYNC_MODE: 'webhook',
  });
  assert.equal(c.listen.port, 0);
  assert.equal(c.runtime.maxNumSandboxes, 7);
  assert.equal(c.webUrl, undefined);
  assert.equal(c.polls, false);
});

test('every problem at once, each naming its key and variable, as the Rust host words it', () => {
  const got = problems(
    [
      'listen = "nowhere"',
      '[runtime]',
      'resource_factor = 3',
      'runtime_class = "kata"',
      'max_num_sandboxes = 0',
      '[sync]',
      'mode = "sometimes"',
      'concurrency = 5000',
      'request_timeout = 0',
      '[auth]',
      'mode = "api-keys"',
      '[[auth.keys]]',
      'key = "short"',
      'user_id = "u"',
    ].join('\n'),
    { ...RUNTIME, SANDBOXD_POLLING_INTERVAL: 'often' },
  );
  assert.deepEqual(got, [
    'SANDBOXD_POLLING_INTERVAL: expected a whole number, got \'often\'',
    "listen (SANDBOXD_LISTEN): 'nowhere' is not an address; use IP:PORT such as 127.0.0.1:3000",
    'runtime.resource_factor (SANDBOXD_RESOURCE_FACTOR): 3 is not allowed; use 1, 2, 4 or 8',
    "runtime.runtime_class (SANDBOXD_RUNTIME_CLASS): 'kata' is not allowed; use gvisor or sysbox",
    'runtime.max_num_sandboxes (SANDBOXD_MAX_NUM_SANDBOXES): 0 is out of range; use a whole number from 1 up',
    'auth.keys[0].key: too short; use at least 16 characters',
    "sync.mode (SANDBOXD_SYNC_MODE): 'sometimes' is not allowed; use auto, poll or webhook",
    'sync.concurrency: 5000 is out of range; use 1 to 1024',
    'sync.request_timeout: 0 is out of range; use a number of seconds from 0.001 up to 86400',
  ]);
});

test('keys this host does not support are refused by name, not ignored', () => {
  const got = problems(
    [
      'store_cache_mb = 64',
      'color = "blue"',
      'database_url = "postgres://sandboxd:pw-not-shown@db:5432/sandboxd"',
      'host_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"',
      '[runtime]',
      'api_url = "http://127.0.0.1:1"',
      'api_key = "k"',
      '[plugin]',
      'watch = true',
      '[local_runtime]',
      'isolation = "bwrap"',
      '[[specs]]',
      'id = "x"',
      'probe = "tcp"',
      '[auth]',
      'mode = "trusted-header"',
    ].join('\n'),
    { SANDBOXD_PLUGIN_ALLOWED_HOSTS: '*', SANDBOXD_DATABASE_URL: 'postgres://u:pw-not-shown@db/x', SANDBOXD_HOST_KEY: 'ab'.repeat(32) },
  );
  assert.deepEqual(got, [
    'SANDBOXD_DATABASE_URL: database_url is not supported by sandboxd-node',
    'SANDBOXD_HOST_KEY: host_key is not supported by sandboxd-node',
    'SANDBOXD_PLUGIN_ALLOWED_HOSTS: plugin.allowed_hosts is not supported by sandboxd-node',
    'store_cache_mb: not supported by sandboxd-node (it keeps its state in SQLite, not redb)',
    'color: unknown key',
    'database_url: not supported by sandboxd-node (it keeps its state in one SQLite file in data_dir; replicas on PostgreSQL are the Rust host’s)',
    'host_key: not supported by sandboxd-node (its host key is the file data_dir/host.key)',
    'local_runtime: not supported by sandboxd-node (it has no embedded local runtime)',
    'plugin.watch: unknown key',
    'specs[0].probe: not supported by sandboxd-node (it has no embedded local runtime)',
    "auth.mode (SANDBOXD_AUTH_MODE): 'trusted-header' is not supported by sandboxd-node; use none or api-keys",
  ]);
});

test('database_url and host_key: refused by name, their values never quoted; empty ones are no value, as on the Rust host', () => {
  const got = problems('database_url = "postgres://u:pw-not-shown@db/x"', { ...RUNTIME, SANDBOXD_HOST_KEY: 'secret-not-shown' });
  assert.equal(got.length, 2);
  assert.ok(!got.join('\n').includes('not-shown'), got.join('\n'));
  // An empty variable unsets the key, in the file too (the Rust host's rule for optional keys).
  assert.equal(load('database_url = "postgres://u:pw@db/x"', { ...RUNTIME, SANDBOXD_DATABASE_URL: ' ', SANDBOXD_HOST_KEY: '' }).dataDir, '.sandboxd');
  assert.equal(load('database_url = ""\nhost_key = " "').dataDir, '.sandboxd');
});

test('the runtime API is required (no embedded local runtime), with its key', () => {
  assert.deepEqual(problems('', {}), ['runtime.api_url (SANDBOXD_RUNTIME_API_URL): required: sandboxd-node has no embedded local runtime']);
  assert.deepEqual(problems('', { SANDBOXD_RUNTIME_API_URL: 'http://127.0.0.1:1' }), [
    'runtime.api_key (SANDBOXD_RUNTIME_API_KEY): required with a remote runtime API',
  ]);
  assert.deepEqual(problems('', { ...RUNTIME, SANDBOXD_RUNTIME_API_URL: 'ftp://x' }), ["runtime.api_url (SANDBOXD_RUNTIME_API_URL): 'ftp://x' must use http or https"]);
  assert.deepEqual(problems('listen = "0.0.0.0:3000"').length, 1);
  assert.match(problems('listen = "0.0.0.0:3000"')[0], /refusing to serve 0\.0\.0\.0:3000 without authentication/);
  assert.equal(load('listen = "0.0.0.0:3000"\n[auth]\nallow_unauthenticated_public = true').listen.host, '0.0.0.0');
});

test('specs and keys as the Rust host reads them', () => {
  const c = load('[[specs]]\nid = "a"\ncommand = ["x"]\ninitial_env = { B = "2", A = "1" }\n[[specs]]\nid = "b"\n[auth]\nmode = "api-keys"\n[[auth.keys]]\nkey = "alice-key-0123456789"\nuser_id = "alice"\n[[auth.keys]]\nkey = "admin-key-0123456789"\nadmin = true');
  assert.deepEqual(c.specs, [
    { id: 'a', command: ['x'], workingDir: '/workspace/project', initialEnv: [['B', '2'], ['A', '1']] },
    { id: 'b', command: undefined, workingDir: '/workspace/project', initialEnv: [] },
  ]);
  assert.deepEqual(c.auth, { mode: 'api-keys', keys: [{ key: 'alice-key-0123456789', userId: 'alice' }, { key: 'admin-key-0123456789', userId: undefined }] });
  assert.deepEqual(problems('[[specs]]\nid = "a"\n[[specs]]\nid = "a"'), ["specs[1].id: 'a' is configured twice"]);
});
