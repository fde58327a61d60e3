// Runs one call of the component in a worker thread, then posts its outcome.
//
// jco's bindings are synchronous and block their thread until the call returns (a `wait` can
// take minutes), so each call gets a worker of its own (runner.js) and the caller's event
// loop stays free. The worker's environment is set by runner.js to the API key alone:
// preview2-shim hands this thread's `process.env` to the component as its WASI environment.
//
// Messages to the parent; each call ends with exactly one of ok, err, trap or unavailable:
//   { type: 'loaded' }               the component is instantiated: later failures are its own
//   { type: 'submitted', jobId }     generate only: the job exists from here on
//   { type: 'ok', value }            the export returned ok (raw jco values)
//   { type: 'err', error }           the export returned err: the WIT `error` variant
//   { type: 'trap', message }        the component trapped or a binding threw
//   { type: 'unavailable', message } the bundled component could not be loaded

import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';
import { allowOrigin } from './egress.js';
import { GATE_OPEN, GATE_SUBMITTING } from './gate.js';

const { op, args, origin, gate } = workerData;
const send = (message) => parentPort.postMessage(message);

async function main() {
  allowOrigin(origin);

  // jco's bindings start reading the core wasm without awaiting it at once, so a missing file
  // would surface as an unhandled rejection with a stack, not as an error of the import below.
  // Checking the file first gives the caller one plain sentence instead.
  const problem = await checkCoreWasm();
  if (problem) {
    send({ type: 'unavailable', message: problem });
    return;
  }
  let videoGen;
  try {
    ({ videoGen } = await import('../generated/happyhorse.js'));
  } catch (e) {
    send({ type: 'unavailable', message: firstLine(e) });
    return;
  }
  send({ type: 'loaded' });

  try {
    send({ type: 'ok', value: call(videoGen) });
  } catch (e) {
    // jco throws an export's `err` as a ComponentError whose `.payload` is the WIT variant;
    // anything without a payload is a trap or a bug in the bindings, not an answer.
    if (e && Object.prototype.hasOwnProperty.call(e, 'payload')) {
      send({ type: 'err', error: e.payload });
    } else {
      send({ type: 'trap', message: firstLine(e) });
    }
  }
}

function call(videoGen) {
  switch (op) {
    case 'validate':
      return videoGen.validate(args.request);
    case 'estimateCost':
      return videoGen.estimateCost(args.request, args.rates);
    case 'submit':
      return videoGen.submit(args.config, args.request);
    case 'poll':
      return videoGen.poll(args.config, args.jobId);
    case 'wait':
      return videoGen.wait(args.config, args.jobId);
    case 'generate':
      return generate(videoGen);
    default:
      throw new Error(`unknown operation ${op}`);
  }
}

// The WIT `generate` is `submit` then `wait`; done in two steps here so that the parent learns
// the job id the moment the job exists, and an abort after that can hand it back to resume.
function generate(videoGen) {
  // An abort that came before this point has closed the gate: send nothing at all. (The parent
  // has already rejected and is terminating this worker; what is thrown here goes unheard.)
  if (Atomics.compareExchange(gate, 0, GATE_OPEN, GATE_SUBMITTING) !== GATE_OPEN) {
    throw new Error('aborted before submit');
  }
  const jobId = videoGen.submit(args.config, args.request);
  send({ type: 'submitted', jobId });
  return videoGen.wait(args.config, jobId);
}

/** Why the bundled core wasm cannot be used, or undefined when it is a valid module. */
async function checkCoreWasm() {
  const file = fileURLToPath(new URL('../generated/happyhorse.core.wasm', import.meta.url));
  let bytes;
  try {
    bytes = await readFile(file);
  } catch (e) {
    return `${file} cannot be read (${e.code ?? e.message})`;
  }
  if (!WebAssembly.validate(bytes)) return `${file} is not a valid WebAssembly module`;
  return undefined;
}

// The message without the stack: a trap's stack is a column of wasm frames no caller can use.
function firstLine(e) {
  const text = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return text.split('\n')[0];
}

await main();
