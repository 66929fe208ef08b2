// The plugin's `settings`: the validated configuration the logic needs, in
// the WIT's shape (no secrets). Specs are stamped with `created-at`, the moment
// the host loaded them (they have no other birth date), in microseconds as the
// Rust host writes it.

/** Upstream's default spec: the OpenHands agent server image. */
export const DEFAULT_SPEC = {
  id: 'ghcr.io/openhands/agent-server:latest-python',
  command: ['/usr/local/bin/openhands-agent-server', '--port', '60000'],
  workingDir: '/workspace/project',
  initialEnv: [],
};

/** `2026-01-02T03:04:05.123456Z`. */
export function microsNow() {
  const micros = Math.round((performance.timeOrigin + performance.now()) * 1000);
  const date = new Date(Math.floor(micros / 1000));
  return `${date.toISOString().slice(0, 19)}.${String(micros % 1_000_000).padStart(6, '0')}Z`;
}

/**
 * @param {import('./index.js').SandboxdOptions} options
 * @param {string} createdAt
 */
export function pluginSettings(options, createdAt) {
  const rt = options.runtime;
  const lifecycle = options.lifecycle ?? {};
  const specs = options.specs && options.specs.length > 0 ? options.specs : [DEFAULT_SPEC];
  return {
    runtimeApiUrl: rt.apiUrl.replace(/\/+$/, ''),
    webUrl: options.webUrl?.replace(/\/+$/, ''),
    resourceFactor: rt.resourceFactor ?? 1,
    runtimeClass: rt.runtimeClass ?? 'gvisor',
    startSandboxTimeoutSecs: rt.startSandboxTimeoutSecs ?? 120,
    maxNumSandboxes: rt.maxNumSandboxes ?? 10,
    specs: specs.map((s) => ({
      id: s.id,
      command: s.command ?? undefined,
      initialEnv: Array.isArray(s.initialEnv) ? s.initialEnv : Object.entries(s.initialEnv ?? {}),
      workingDir: s.workingDir ?? DEFAULT_SPEC.workingDir,
      createdAt,
    })),
    agentRequestTimeoutMs: options.sync?.requestTimeoutMs ?? 10_000,
    specPolicies: specs.map((s) => [s.id, policyOf(lifecycle, s)]),
    defaultPolicy: policyOf(lifecycle, {}),
    teardownGraceSecs: lifecycle.teardownGraceSecs ?? 30,
    historyRetentionSecs: lifecycle.historyRetentionSecs ?? 7 * 24 * 3600,
    warmPools: specs.filter((s) => (s.warm ?? 0) > 0).map((s) => [s.id, s.warm]),
  };
}

/** A policy's seconds: a spec's value over the host's; 0 or none is off. */
function policyOf(lifecycle, spec) {
  const pick = (key) => {
    const v = spec[key] ?? lifecycle[key];
    return v ? v : undefined;
  };
  return { idlePauseSecs: pick('idlePauseSecs'), maxRunningSecs: pick('maxRunningSecs'), deletePausedAfterSecs: pick('deletePausedAfterSecs') };
}
