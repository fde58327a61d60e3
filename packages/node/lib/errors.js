// HappyHorseError: every way a call of this package fails, as one class with a `kind`.
//
// `kind` is the WIT `error` case without the contract's `permanent-` prefix (`invalid-request`,
// `unauthorized`, `timeout`, …: the names the Python package's classes use); `case` keeps the
// case exactly as the WIT spells it, for logs that must match the contract and other hosts, and
// `permanent` says whether the prefix was there. `data` is the payload in this package's JS
// shapes. Two kinds are this package's own, for failures the
// contract has no case for: `aborted` (the caller's AbortSignal) and `component-unavailable`
// (the bundled component could not be loaded).

import { toJobStatus } from './convert.js';

/** Error cases of `videogen:api/video-gen@0.3.0`, in the WIT's order, spelled as there. */
export const WIT_ERROR_CASES = Object.freeze([
  'permanent-invalid-request',
  'permanent-unauthorized',
  'insufficient-credits',
  'rate-limited',
  'job-failed',
  'not-found',
  'server-error',
  'transport-error',
  'permanent-submit-outcome-unknown',
  'timeout',
  'malformed-response',
  'execution-failed',
]);

/**
 * A failed call. `kind` names the case (`case` as the WIT spells it), `data` carries its
 * payload, `jobId` names the job when one exists (pass it to `wait` to resume; never submit
 * again).
 */
export class HappyHorseError extends Error {
  /**
   * @param {string} kind a WIT case as the WIT spells it, or `aborted` / `component-unavailable`
   * @param {unknown} data
   * @param {string} message
   * @param {{ jobId?: string, cause?: unknown }} [extra]
   */
  constructor(kind, data, message, extra = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'HappyHorseError';
    this.case = WIT_ERROR_CASES.includes(kind) ? kind : undefined;
    this.kind = kind.replace(/^permanent-/, '');
    this.data = data;
    this.jobId = extra.jobId;
  }

  /**
   * Whether this error is of the given kind (a type guard in TypeScript).
   * @param {string} kind
   */
  is(kind) {
    return this.kind === kind;
  }

  /**
   * Whether calling again unchanged could not help, or could pay twice: the contract marks
   * these cases with `permanent` in their names.
   */
  get permanent() {
    return this.case?.startsWith('permanent-') ?? false;
  }
}

/**
 * The WIT `error` variant `{ tag, val }`, as jco gives it, to a HappyHorseError.
 * @param {{ tag: string, val?: any }} error
 * @param {string} [knownJobId] the job the call was about, if the caller knows it
 */
export function fromWitError({ tag, val }, knownJobId) {
  let data = val;
  let jobId = knownJobId;
  let detail;
  switch (tag) {
    case 'permanent-invalid-request':
      detail = val.map((v) => `${v.field}: ${v.message}`).join('; ');
      break;
    case 'rate-limited':
      data = { retryAfterMs: optionalNumber(val.retryAfterMs), message: val.message };
      detail = val.message;
      break;
    case 'job-failed':
      jobId = val.jobId;
      detail = `job ${val.jobId}: ${val.failure.code}: ${val.failure.message}`;
      break;
    case 'not-found':
      jobId = val;
      detail = `job ${val}`;
      break;
    case 'timeout':
      jobId = val.jobId;
      data = { jobId: val.jobId, lastStatus: val.lastStatus && toJobStatus(val.lastStatus) };
      detail = `job ${val.jobId} is still running; resume it with wait(${JSON.stringify(val.jobId)})`;
      break;
    case 'transport-error':
      detail = `${val.kind}: ${val.message}`;
      break;
    case 'execution-failed':
      data = undefined;
      detail = 'the host stopped the call';
      break;
    default:
      // api-error (status, code?, message) and submit-unknown (message).
      detail = [val?.code, val?.message].filter(Boolean).join(': ');
  }
  // After a submit every error names the job, so the caller can resume instead of paying twice.
  if (jobId !== undefined && !detail.includes(jobId)) detail += ` (job ${jobId})`;
  return new HappyHorseError(tag, data, `${tag}: ${detail}`, { jobId });
}

/**
 * A request the package refused before the component saw it (a wrong type, an unknown field):
 * the same kind and payload shape as the component's own refusals.
 * @param {{ field: string, rule: string, message: string }[]} violations
 */
export function invalidRequest(violations) {
  return fromWitError({ tag: 'permanent-invalid-request', val: violations });
}

/**
 * The caller's AbortSignal stopped the call.
 * @param {unknown} reason the signal's reason
 * @param {string | undefined} jobId the job, when one was submitted: resume it with `wait`
 */
export function aborted(reason, jobId) {
  const message =
    jobId === undefined
      ? 'aborted: nothing was submitted'
      : `aborted: job ${jobId} goes on at the provider; resume it with wait(${JSON.stringify(jobId)})`;
  return new HappyHorseError('aborted', { jobId }, message, { jobId, cause: reason });
}

/**
 * The bundled component could not be loaded (missing, corrupt, or not this package's build).
 * @param {string} reason
 */
export function componentUnavailable(reason) {
  return new HappyHorseError(
    'component-unavailable',
    { reason },
    `component-unavailable: the bundled HappyHorse component could not be loaded (${reason}); reinstall the happyhorse package`,
  );
}

/**
 * The component trapped, or its worker died: the contract's `execution-failed`.
 * @param {string} reason one line, never a stack of wasm frames
 * @param {string | undefined} jobId
 */
export function executionFailed(reason, jobId) {
  const job = jobId === undefined ? '' : ` (job ${jobId} was submitted; resume it with wait(${JSON.stringify(jobId)}))`;
  return new HappyHorseError('execution-failed', undefined, `execution-failed: ${reason}${job}`, { jobId });
}

function optionalNumber(value) {
  return value === undefined ? undefined : Number(value);
}
