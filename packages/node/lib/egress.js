// The component's only way out: `wasi:http/outgoing-handler`, interposed on the shim's.
//
// preview2-shim 0.26.1 has no per-host policy for outgoing HTTP: its handler sends any request
// to any host, and its one switch (`_denyHttp`) turns HTTP off for the whole process. So
// build.sh has jco import this module instead of the shim's handler (`--map`), and this
// module refuses every request whose origin is not the client's API origin before the shim
// opens a connection. The component reports the refusal as `transport-error` kind `denied`.
//
// It runs inside the worker thread (see worker.js), which calls `allowOrigin` once before
// loading the bindings.

import { outgoingHandler as shimHandler } from '@bytecodealliance/preview2-shim/http';

/** The one origin requests may go to; `null` until `allowOrigin` is called: deny all. */
let allowed = null;

/**
 * Allow requests to this origin (scheme, host and port) and no other.
 * @param {string} url an absolute http(s) URL; only its origin counts
 */
export function allowOrigin(url) {
  allowed = new URL(url).origin;
}

/**
 * The origin a `wasi:http` outgoing request would reach, the way the shim reads it, or
 * `null` when it has none we can name (the shim would send an unset scheme as https).
 * @param {{ scheme(): { tag: string, val?: string } | undefined, authority(): string | undefined }} request
 * @returns {string | null}
 */
export function requestOrigin(request) {
  const scheme = request.scheme();
  const authority = request.authority();
  if (!authority) return null;
  const name = scheme === undefined ? 'https' : scheme.tag === 'other' ? scheme.val : scheme.tag;
  try {
    // URL normalizes case and default ports, so `https://h:443` and `https://H` compare equal.
    return new URL(`${String(name).toLowerCase()}://${authority}`).origin;
  } catch {
    return null;
  }
}

/** The handler jco's bindings call in place of the shim's. */
export const outgoingHandler = {
  /**
   * @param {any} request a `wasi:http/types.outgoing-request`
   * @param {any} options its `request-options`, if any
   */
  handle(request, options) {
    const origin = requestOrigin(request);
    if (allowed === null || origin !== allowed) {
      // A plain object, not an Error: jco lowers it as the `error-code` of the result.
      throw { tag: 'HTTP-request-denied' };
    }
    return shimHandler.handle(request, options);
  },
};
