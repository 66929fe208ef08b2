// `sandboxd-node serve [--config FILE] [--plugin FILE]`: the library, the SQLite store in
// `data_dir`, the host key, the background work and the server, wired as the
// Rust host's `sandboxd serve` wires its parts. Prints
// `sandboxd listening on http://ADDR` on standard output once it serves; logs
// go to standard error.

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Background } from './background.js';
import { ConfigError, loadConfig } from './config/index.js';
import { HostKey } from './host-key.js';
import { Logger } from './log.js';
import { serve } from './server/index.js';
import { SqliteStore } from './storage/sqlite.js';
import { createSandboxd } from './index.js';

const USAGE = 'usage: sandboxd-node serve [--config FILE] [--plugin FILE]';

async function main(argv) {
  const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, options: { config: { type: 'string' }, plugin: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1 || positionals[0] !== 'serve') {
    console.error(USAGE);
    return 2;
  }
  const logger = new Logger({ filter: process.env.SANDBOXD_LOG });
  let config;
  try {
    config = loadConfig(values.config);
  } catch (e) {
    console.error(`Error: ${e instanceof ConfigError ? e.message : e}`);
    return 1;
  }
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const sd = await createSandboxd({
    plugin: values.plugin ?? config.plugin.path,
    runtime: config.runtime,
    webUrl: config.callbackUrl,
    specs: config.specs,
    http: config.http,
    sync: config.sync,
    lifecycle: config.lifecycle,
    storage: new SqliteStore(join(dataDir, 'sandboxd-node.sqlite')),
    hostKey: HostKey.open(dataDir),
    logger,
  });
  logger.log('info', 'plugin loaded', {
    plugin: sd.plugin.pluginVersion,
    contract: sd.plugin.contractVersion,
    sha256: sd.plugin.sha256,
    source: sd.plugin.source,
    transpile_ms: sd.plugin.transpileMillis.toFixed(1),
  });
  const background = new Background(sd, logger);
  const server = await serve(sd, { listen: config.listen, auth: config.auth, logger, pollCycle: () => background.cycle() });
  background.start({ ...config.runtime, polls: config.polls, callTimeoutMs: sd.limits.callTimeoutMs });
  logger.log('info', 'sandboxd listening', { addr: server.url, runtime_api: config.runtime.apiUrl, auth: config.auth.mode });
  // Tests and scripts read the address from this one line on standard output.
  process.stdout.write(`sandboxd listening on ${server.url}\n`);

  await new Promise((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  logger.log('info', 'shutting down');
  background.stop();
  await server.close();
  await sd.close();
  logger.log('info', 'sandboxd stopped');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(`Error: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  },
);
