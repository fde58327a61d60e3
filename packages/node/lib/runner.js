// One component call in a worker thread of its own: start it, relay its answer, stop it.
//
// A worker per call keeps calls independent: concurrent calls do not queue behind a `wait`
// that may last minutes, and aborting one call is terminating its worker, which nothing else
// shares. The price is loading the bindings per call (about 0.1–0.3 s).

import { Worker } from 'node:worker_threads';
import { aborted, componentUnavailable, executionFailed, fromWitError } from './errors.js';
import { closeGate, createGate } from './gate.js';

const WORKER_URL = new URL('./worker.js', import.meta.url);

/**
 * Run one export in a new worker.
 * @param {string} op the export: validate, estimateCost, submit, poll, wait or generate
 * @param {object} args its arguments, already in jco's shapes
 * @param {{ apiKey?: string, origin: string, signal?: AbortSignal, jobId?: string }} context
 *   `jobId` is the job the call is about (wait, poll), named in any error it ends with
 * @returns {Promise<any>} the export's ok value, in jco's shapes
 */
export function runInWorker(op, args, { apiKey, origin, signal, jobId: knownJobId }) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(aborted(signal.reason, knownJobId));
      return;
    }
    const gate = createGate();
    let jobId = knownJobId;
    let abortRequested = false;
    let loaded = false;
    let settled = false;

    const worker = new Worker(WORKER_URL, {
      workerData: { op, args, origin, gate },
      // The component's whole environment: the key and nothing else of this process.
      env: apiKey === undefined ? {} : { EMPIRIOLABS_API_KEY: apiKey },
    });

    const settle = (fn, value) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      // The worker may be blocked inside the component, or idle on the shim's I/O thread:
      // either way it is of no further use.
      void worker.terminate();
      fn(value);
    };

    function onAbort() {
      abortRequested = true;
      // generate's submit already under way: let it finish, so the abort hands back the job
      // id instead of leaving a paid job nobody can name (the 'submitted' message ends it).
      if (op === 'generate' && jobId === undefined && !closeGate(gate)) return;
      settle(reject, aborted(signal.reason, jobId));
    }
    signal?.addEventListener('abort', onAbort, { once: true });

    worker.on('message', (message) => {
      switch (message.type) {
        case 'loaded':
          loaded = true;
          break;
        case 'submitted':
          jobId = message.jobId;
          if (abortRequested) settle(reject, aborted(signal?.reason, jobId));
          break;
        case 'ok':
          settle(resolve, message.value);
          break;
        case 'err':
          settle(reject, fromWitError(message.error, jobId));
          break;
        case 'trap':
          settle(reject, executionFailed(`the component trapped: ${message.message}`, jobId));
          break;
        case 'unavailable':
          settle(reject, componentUnavailable(message.message));
          break;
      }
    });
    // An exception the worker did not catch. Before the component was loaded that is a broken
    // install (a file or the shim missing); after, the component's or the shim's failure.
    worker.on('error', (e) => {
      const line = String(e instanceof Error ? `${e.name}: ${e.message}` : e).split('\n')[0];
      settle(reject, loaded ? executionFailed(line, jobId) : componentUnavailable(line));
    });
    worker.on('exit', (code) => {
      const line = `the worker stopped (exit code ${code}) before answering`;
      settle(reject, loaded ? executionFailed(line, jobId) : componentUnavailable(line));
    });
  });
}
