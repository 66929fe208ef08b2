// The contract rule, case for case the Rust host's (`host/src/plugin/contract.rs`).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CONTRACT_VERSION, compatible, declaredVersion } from '../src/plugin/contract.js';

test('this host implements the contract of wit/', () => {
  const world = readFileSync(new URL('../../../wit/world.wit', import.meta.url), 'utf8');
  assert.ok(world.includes(`package sandboxd:plugin@${CONTRACT_VERSION};`));
});

test('semver compatibility: same major, and below 1.0 the same minor', () => {
  for (const [h, p] of [['0.1.0', '0.1.0'], ['0.1.0', '0.1.7'], ['1.2.0', '1.0.3'], ['0.1.0', '0.1.2-rc.1'], ['0.1.0-dev', '0.1.0+abc'], ['1.0.0', '1.4.0-alpha+build.7'], ['0.0.1', '0.0.2']]) {
    assert.ok(compatible(h, p), `${h} runs ${p}`);
  }
  for (const [h, p] of [['0.1.0', '0.2.0'], ['0.1.0', '1.1.0'], ['1.2.0', '2.0.0'], ['0.1.0', 'zero'], ['0.1.0', '0.1'], ['0.1.0', '0.1.0.0'], ['0.1.0', ''], ['0.1.0', '0.2.0-rc.1']]) {
    assert.ok(!compatible(h, p), `${h} refuses ${p}`);
  }
});

test('this host runs plugins of contract 0.5.x and refuses 0.4 and 0.6', () => {
  for (const p of ['0.5.0', '0.5.1', '0.5.12-rc.1']) assert.ok(compatible(CONTRACT_VERSION, p), p);
  for (const p of ['0.4.0', '0.4.1', '0.6.0', '1.5.0']) assert.ok(!compatible(CONTRACT_VERSION, p), p);
});

test('the declared version comes from the interface names', () => {
  assert.equal(declaredVersion(['wasi:io/streams@0.2.6', 'sandboxd:plugin/http@0.2.0', 'sandboxd:plugin/info@0.2.0']), '0.2.0');
  assert.throws(() => declaredVersion(['wasi:cli/run@0.2.0']), /neither/);
  assert.throws(() => declaredVersion(['sandboxd:plugin/http@0.1.0', 'sandboxd:plugin/info@0.2.0']), /0\.1\.0, 0\.2\.0/);
});
