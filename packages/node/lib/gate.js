// The handshake that lets `generate` be aborted without losing a job.
//
// A one-slot Int32Array on a SharedArrayBuffer, shared by runner.js and worker.js. The worker
// moves it OPEN → SUBMITTING just before it sends the submit; an abort moves it OPEN → CLOSED.
// Both use compareExchange, so exactly one wins: either the abort stopped the call before
// anything was sent, or the submit is under way and the abort waits for its job id.

/** Nothing sent yet; an abort may still stop the call outright. */
export const GATE_OPEN = 0;
/** The submit is in flight: an abort must wait for its answer. */
export const GATE_SUBMITTING = 1;
/** Aborted before the submit: the worker must not send it. */
export const GATE_CLOSED = 2;

/** @returns {Int32Array} a new gate, open */
export function createGate() {
  return new Int32Array(new SharedArrayBuffer(4));
}

/**
 * Close the gate if nothing was sent yet.
 * @param {Int32Array} gate
 * @returns {boolean} true when the submit had not started (and now never will)
 */
export function closeGate(gate) {
  return Atomics.compareExchange(gate, 0, GATE_OPEN, GATE_CLOSED) === GATE_OPEN;
}
