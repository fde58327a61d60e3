// Runs the video-gen component in a worker thread.
//
// jco's bindings are synchronous: `wait` blocks its thread until the job ends (minutes on the
// real service). Here it blocks this worker, not the main thread's event loop.
//
// The worker is started with `env: { EMPIRIOLABS_API_KEY }` only (see generate.mjs), and
// preview2-shim hands the component this thread's `process.env` as its WASI environment: the
// component sees the key and nothing else. `config.apiKey` stays unset so the component reads
// it from there, the same way the wasmtime CLI (`--env`) and Obelisk (secrets) pass it.

import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const { bindings, baseUrl, request, resume, poll, requestTimeoutMs } = workerData;

const { videoGen } = await import(pathToFileURL(path.resolve(bindings, 'happyhorse.js')).href);

const config = {
  baseUrl, // undefined means https://api.empiriolabs.ai
  apiKey: undefined, // read from EMPIRIOLABS_API_KEY in the component's environment
  firstByteTimeoutMs: requestTimeoutMs,
  betweenBytesTimeoutMs: requestTimeoutMs,
  poll: poll && {
    minIntervalMs: poll.minIntervalMs,
    maxIntervalMs: poll.maxIntervalMs,
    deadlineMs: BigInt(poll.deadlineMs), // u64 and s64 are BigInt in JS
    maxRetries: poll.maxRetries,
  },
};

const send = (message) => parentPort.postMessage(message);

let jobId = resume;
try {
  if (!jobId) {
    const validated = videoGen.validate(request);
    for (const warning of validated.warnings) send({ type: 'warning', warning });
    const cost = videoGen.estimateCost(request, undefined);
    send({ type: 'cost', cost });
    jobId = videoGen.submit(config, request);
    send({ type: 'submitted', jobId });
  }
  const status = videoGen.poll(config, jobId);
  send({ type: 'status', jobId, state: status.state });
  const result = videoGen.wait(config, jobId);
  send({ type: 'completed', jobId, outputs: result.outputs, rawStatus: result.status.rawStatus });
} catch (e) {
  // Every export returns result<_, error>: jco throws the error as a ComponentError whose
  // `.payload` is the WIT `error` variant, `{ tag: 'timeout', val: { jobId, lastStatus } }`.
  // Anything without a payload is a trap or a bug, not an answer from the component.
  if (e && Object.prototype.hasOwnProperty.call(e, 'payload')) {
    send({ type: 'error', jobId, error: e.payload });
  } else {
    send({ type: 'trap', jobId, message: String(e && e.stack ? e.stack : e) });
  }
}
