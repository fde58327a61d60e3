// Values between this package's JS shapes and jco's shapes of the WIT types.
//
// jco already spells record fields in camelCase and options as `undefined`; what changes here
// is the 64-bit integers (jco: BigInt; here: number, except a `seed` may be given as either)
// and `job-state`, a `{ tag, val }` variant in jco, flattened to `state` plus the fields it
// carries. Checking what a caller passes is request.js's job, not this module's.

/**
 * A `job-status` from jco to the package's `JobStatus`.
 * @param {any} s
 */
export function toJobStatus(s) {
  const status = { jobId: s.jobId, state: s.state.tag };
  switch (s.state.tag) {
    case 'running':
      if (s.state.val !== undefined) status.progress = s.state.val;
      break;
    case 'completed':
      status.outputs = s.state.val;
      break;
    case 'failed':
      status.failure = s.state.val;
      break;
  }
  if (s.progressReading !== undefined) {
    status.progressReading = {
      value: s.progressReading.value,
      markedPercent: s.progressReading.markedPercent,
    };
  }
  status.rawStatus = s.rawStatus;
  if (s.createdAt !== undefined) status.createdAt = s.createdAt;
  if (s.completedAt !== undefined) status.completedAt = s.completedAt;
  status.nextPollMs = s.nextPollMs;
  return status;
}

/**
 * A `job-result` from jco to the package's `JobResult`.
 * @param {any} r
 */
export function toJobResult(r) {
  return { jobId: r.jobId, outputs: r.outputs, status: toJobStatus(r.status) };
}

/**
 * A `video-request` from jco (as `validate` returns it) to the package's `VideoRequest`.
 * @param {any} r
 */
export function toVideoRequest(r) {
  const out = {};
  for (const [key, value] of Object.entries(r)) {
    if (value === undefined) continue;
    // A validated seed is within the provider's range, far inside a safe integer.
    out[key] = key === 'seed' ? Number(value) : value;
  }
  return out;
}

/**
 * A `validated-request` from jco to the package's `ValidatedRequest`.
 * @param {any} v
 */
export function toValidatedRequest(v) {
  return { request: toVideoRequest(v.request), warnings: v.warnings };
}

/**
 * A `cost-estimate` from jco to the package's `CostEstimate` (micro-units as numbers: exact up
 * to 9 billion currency units).
 * @param {any} c
 */
export function toCostEstimate(c) {
  return {
    currency: c.currency,
    billedSeconds: c.billedSeconds,
    microsPerSecond: Number(c.microsPerSecond),
    totalMicros: Number(c.totalMicros),
  };
}
