// The installed `happyhorse` package against a running emulator of the EmpirioLabs API.
//
// Run by test-package.sh in a fresh project outside the repository, so `happyhorse` below
// is the tarball as a user installs it. HAPPYHORSE_EMULATOR_URL names the emulator, which
// accepts the key `emulator-key`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client, HappyHorseError } from 'happyhorse';

const EMULATOR_URL = process.env.HAPPYHORSE_EMULATOR_URL;
assert.ok(EMULATOR_URL, 'set HAPPYHORSE_EMULATOR_URL to a running emulator');
const KEY = 'emulator-key';
// Fast polling suits the emulator; the real service wants the defaults (5–15 s).
const FAST_POLL = { minIntervalMs: 200, maxIntervalMs: 1000, deadlineMs: 120_000 };
const TIMEOUT = { timeout: 150_000 };

const client = new Client({ apiKey: KEY, baseUrl: EMULATOR_URL, poll: FAST_POLL });

/** Rejects with the error `promise` rejects with, or fails when it resolves. */
async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail('expected the call to reject');
}

/** An HTTP server that answers 500 to everything and counts what reached it. */
async function countingServer() {
  let requests = 0;
  const server = createServer((_req, res) => {
    requests += 1;
    res.writeHead(500).end();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests: () => requests,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

test('generate: one video end to end, without blocking the event loop', TIMEOUT, async () => {
  let ticks = 0;
  const timer = setInterval(() => (ticks += 1), 50);
  try {
    const result = await client.generate({ prompt: 'A horse gallops along a beach at sunset.', durationSeconds: 5 });
    assert.match(result.jobId, /\S/);
    assert.ok(result.outputs.length >= 1);
    for (const url of result.outputs) assert.doesNotThrow(() => new URL(url));
    assert.equal(result.status.state, 'completed');
    assert.equal(result.status.jobId, result.jobId);
    assert.deepEqual(result.status.outputs, result.outputs);
    // The job takes seconds; a blocked loop would not have ticked at all meanwhile.
    assert.ok(ticks >= 5, `the event loop ticked ${ticks} times during generate`);
  } finally {
    clearInterval(timer);
  }
});

test('validate and estimateCost work offline and fill in defaults', async () => {
  const offline = new Client({ apiKey: KEY, baseUrl: 'http://127.0.0.1:9' });
  const { request, warnings } = await offline.validate({ prompt: 'A horse.' });
  assert.equal(request.model, 'happyhorse-1-1');
  assert.equal(request.mode, 'auto');
  assert.equal(typeof request.durationSeconds, 'number');
  assert.deepEqual(warnings, []);
  const cost = await offline.estimateCost({ prompt: 'A horse.', durationSeconds: 5, resolution: '720p' });
  assert.equal(cost.currency, 'USD');
  assert.equal(cost.billedSeconds, 5);
  assert.equal(cost.totalMicros, cost.microsPerSecond * 5);
  const custom = await offline.estimateCost(
    { prompt: 'A horse.', durationSeconds: 5, resolution: '720p' },
    { rates: [{ resolution: '720p', microsPerSecond: 100_000 }] },
  );
  assert.equal(custom.totalMicros, 500_000);
});

test('submit, then poll and wait by job id', TIMEOUT, async () => {
  const jobId = await client.submit({ prompt: 'A horse trots through snow.', durationSeconds: 3 });
  assert.equal(typeof jobId, 'string');
  const status = await client.poll(jobId);
  assert.equal(status.jobId, jobId);
  assert.ok(['queued', 'running', 'completed'].includes(status.state), status.state);
  const result = await client.wait(jobId);
  assert.equal(result.jobId, jobId);
  assert.equal(result.status.state, 'completed');
  assert.ok(result.outputs.length >= 1);
});

test('poll hands over the progress as written, beside the one-reading fraction', TIMEOUT, async () => {
  // The emulator answers this job's polls with 0.6, then 6: a percent job's first readings.
  const jobId = await client.submit({ prompt: 'A horse. [emulator:progress=0.6,6]', durationSeconds: 3 });
  let status = await client.poll(jobId);
  while (status.state === 'queued') {
    await new Promise((resolve) => setTimeout(resolve, 100));
    status = await client.poll(jobId);
  }
  assert.equal(status.state, 'running');
  assert.deepEqual(status.progressReading, { value: 0.6, markedPercent: false });
  assert.equal(status.progress, 0.6);
  status = await client.poll(jobId);
  assert.deepEqual(status.progressReading, { value: 6, markedPercent: false });
  assert.equal(status.progress, 0.06);
  assert.equal((await client.wait(jobId)).status.state, 'completed');
});

test('an invalid request is refused before any request is sent', async () => {
  const server = await countingServer();
  try {
    const c = new Client({ apiKey: KEY, baseUrl: server.url });
    // Broken rules the component checks...
    const e1 = await rejection(c.generate({ prompt: '', durationSeconds: 99 }));
    assert.ok(e1 instanceof HappyHorseError);
    assert.equal(e1.kind, 'invalid-request');
    assert.equal(e1.case, 'permanent-invalid-request');
    assert.equal(e1.permanent, true);
    assert.ok(e1.data.some((v) => v.field === 'duration' && v.rule === 'out-of-range'), JSON.stringify(e1.data));
    assert.ok(e1.data.some((v) => v.field === 'prompt'), JSON.stringify(e1.data));
    const e2 = await rejection(c.submit({ prompt: 'A horse.', seed: -1 }));
    assert.equal(e2.kind, 'invalid-request');
    // ...and shapes jco could not carry, or a field the contract does not have.
    const e3 = await rejection(c.submit({ prompt: 'A horse.', durationSeconds: '5', aspect_ratio: '1:1' }));
    assert.equal(e3.kind, 'invalid-request');
    assert.deepEqual(e3.data.map((v) => v.rule).sort(), ['unknown-field', 'wrong-type']);
    assert.equal(server.requests(), 0, 'nothing may reach the server');
  } finally {
    await server.close();
  }
});

test('a wrong key is unauthorized', async () => {
  const c = new Client({ apiKey: 'not-the-key', baseUrl: EMULATOR_URL });
  const e = await rejection(c.submit({ prompt: 'A horse.' }));
  assert.ok(e instanceof HappyHorseError);
  assert.equal(e.kind, 'unauthorized');
  assert.equal(e.case, 'permanent-unauthorized');
  assert.equal(e.data.status, 401);
  assert.equal(e.jobId, undefined);
  assert.ok(!e.message.includes('not-the-key'), e.message);
});

test('no key at all is unauthorized before sending', async () => {
  const saved = process.env.EMPIRIOLABS_API_KEY;
  delete process.env.EMPIRIOLABS_API_KEY;
  try {
    const c = new Client({ baseUrl: EMULATOR_URL });
    const e = await rejection(c.submit({ prompt: 'A horse.' }));
    assert.equal(e.kind, 'unauthorized');
    assert.equal(e.data.status, 0);
  } finally {
    if (saved !== undefined) process.env.EMPIRIOLABS_API_KEY = saved;
  }
});

test('apiKey defaults to EMPIRIOLABS_API_KEY', TIMEOUT, async () => {
  const saved = process.env.EMPIRIOLABS_API_KEY;
  process.env.EMPIRIOLABS_API_KEY = KEY;
  try {
    const c = new Client({ baseUrl: EMULATOR_URL });
    assert.equal(typeof (await c.submit({ prompt: 'A horse.', durationSeconds: 3 })), 'string');
  } finally {
    if (saved === undefined) delete process.env.EMPIRIOLABS_API_KEY;
    else process.env.EMPIRIOLABS_API_KEY = saved;
  }
});

test('AbortSignal: generate stops at once, hands back the job id, and wait resumes it', TIMEOUT, async () => {
  // A minute between polls: the abort lands while the component sleeps inside `wait`, the
  // case where only terminating its worker can stop it.
  const slow = new Client({ apiKey: KEY, baseUrl: EMULATOR_URL, poll: { ...FAST_POLL, minIntervalMs: 60_000, maxIntervalMs: 60_000 } });
  const controller = new AbortController();
  setTimeout(() => controller.abort(new Error('the user pressed cancel')), 1500);
  const started = Date.now();
  const e = await rejection(slow.generate({ prompt: 'A horse in the rain.', durationSeconds: 3 }, { signal: controller.signal }));
  const tookMs = Date.now() - started;
  assert.ok(e instanceof HappyHorseError);
  assert.equal(e.kind, 'aborted');
  assert.equal(typeof e.jobId, 'string', 'the submit happened, so the abort names the job');
  assert.equal(e.data.jobId, e.jobId);
  assert.equal(e.cause.message, 'the user pressed cancel');
  assert.ok(tookMs < 10_000, `the abort took ${tookMs} ms`);
  // Resume, never resubmit: the same job completes.
  const result = await client.wait(e.jobId);
  assert.equal(result.jobId, e.jobId);
  assert.equal(result.status.state, 'completed');
});

test('AbortSignal: wait stops and names its job; an aborted signal sends nothing', TIMEOUT, async () => {
  const jobId = await client.submit({ prompt: 'A horse at dawn.', durationSeconds: 3 });
  const slow = new Client({ apiKey: KEY, baseUrl: EMULATOR_URL, poll: { ...FAST_POLL, minIntervalMs: 60_000, maxIntervalMs: 60_000 } });
  const e = await rejection(slow.wait(jobId, { signal: AbortSignal.timeout(1000) }));
  assert.equal(e.kind, 'aborted');
  assert.equal(e.jobId, jobId);

  const server = await countingServer();
  try {
    const c = new Client({ apiKey: KEY, baseUrl: server.url });
    const e2 = await rejection(c.generate({ prompt: 'A horse.' }, { signal: AbortSignal.abort() }));
    assert.equal(e2.kind, 'aborted');
    assert.equal(e2.jobId, undefined);
    assert.equal(server.requests(), 0);
  } finally {
    await server.close();
  }
  assert.equal((await client.wait(jobId)).status.state, 'completed');
});

test('an unknown job id is not-found', async () => {
  const e = await rejection(client.poll('job_does_not_exist'));
  assert.equal(e.kind, 'not-found');
  assert.equal(e.jobId, 'job_does_not_exist');
});

/**
 * A copy of the installed package beside it (so it resolves the same preview2-shim), changed
 * by `damage(dir)`, loaded as a module of its own.
 */
async function changedCopy(name, damage) {
  const require = createRequire(import.meta.url);
  const installed = path.dirname(require.resolve('happyhorse/package.json'));
  const copy = path.join(path.dirname(installed), name);
  await rm(copy, { recursive: true, force: true });
  await cp(installed, copy, { recursive: true });
  await damage(copy);
  return import(pathToFileURL(path.join(copy, 'lib', 'index.js')).href);
}

const coreWasm = (dir) => path.join(dir, 'generated', 'happyhorse.core.wasm');

for (const [what, damage] of [
  ['corrupt', (dir) => writeFile(coreWasm(dir), Buffer.from('\0asm\x01\0\0\0this is not a module'))],
  ['missing', (dir) => rm(coreWasm(dir))],
]) {
  test(`a ${what} component is a clear component-unavailable error at the first call`, async () => {
    const broken = await changedCopy(`happyhorse-${what}`, damage);
    const c = new broken.Client({ apiKey: KEY, baseUrl: EMULATOR_URL });
    for (const call of [() => c.validate({ prompt: 'A horse.' }), () => c.generate({ prompt: 'A horse.' })]) {
      const e = await rejection(call());
      assert.ok(e instanceof broken.HappyHorseError, String(e));
      assert.equal(e.kind, 'component-unavailable');
      assert.match(e.message, /bundled HappyHorse component could not be loaded/);
      assert.doesNotMatch(e.message, /wasm-function|\n\s+at /);
      assert.equal(typeof e.data.reason, 'string');
    }
  });
}

test('the component may reach the API origin only (lib/egress.js)', async () => {
  // An internal module of the installed package: the handler jco's bindings call instead of
  // preview2-shim's. End to end the component only ever asks for the base URL, so the policy
  // is checked here directly.
  const require = createRequire(import.meta.url);
  const installed = path.dirname(require.resolve('happyhorse/package.json'));
  const egress = await import(pathToFileURL(path.join(installed, 'lib', 'egress.js')).href);
  const request = (tag, authority) => ({ scheme: () => (tag ? { tag } : undefined), authority: () => authority });
  assert.equal(egress.requestOrigin(request('HTTPS', 'API.example.com:443')), 'https://api.example.com');
  assert.equal(egress.requestOrigin(request(undefined, 'api.example.com')), 'https://api.example.com');
  const denied = (r) => assert.throws(() => egress.outgoingHandler.handle(r, undefined), (e) => e.tag === 'HTTP-request-denied');
  denied(request('HTTPS', 'api.example.com')); // nothing allowed yet
  egress.allowOrigin('https://api.example.com/v1');
  denied(request('HTTPS', 'evil.example.com'));
  denied(request('HTTP', 'api.example.com')); // another scheme
  denied(request('HTTPS', 'api.example.com:8443')); // another port
  denied(request('HTTPS', undefined));
});

test('a request to any origin but the allowed one is refused before a connection opens', async () => {
  // A copy whose worker allows the emulator's origin while the client's base URL is another
  // server: the component's request must be refused by lib/egress.js, which only works if the
  // shipped bindings route wasi:http/outgoing-handler through it (jco --map at build time).
  const server = await countingServer();
  try {
    const changed = await changedCopy('happyhorse-other-origin', async (dir) => {
      const worker = path.join(dir, 'lib', 'worker.js');
      const source = await readFile(worker, 'utf8');
      const patched = source.replace('allowOrigin(origin);', `allowOrigin(${JSON.stringify(EMULATOR_URL)});`);
      assert.notEqual(patched, source, 'worker.js no longer calls allowOrigin(origin): update this test');
      await writeFile(worker, patched);
    });
    const c = new changed.Client({ apiKey: KEY, baseUrl: server.url });
    const e = await rejection(c.submit({ prompt: 'A horse.' }));
    assert.equal(e.kind, 'transport-error');
    assert.equal(e.data.kind, 'denied');
    assert.equal(server.requests(), 0);
  } finally {
    await server.close();
  }
});
