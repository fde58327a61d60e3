// What a caller passes, checked for shape and turned into jco's values.
//
// The component checks every rule of the provider (lengths, ranges, allowed ratios); this
// module checks only what jco cannot carry across (a number where a string goes, a fraction
// for a u32, a seed beyond s64) and names a field the contract does not have, so a typo such
// as `aspect_ratio` fails loudly instead of being dropped. A bad shape is refused here, before
// a worker starts, with the same error as the component's refusals.

import { invalidRequest } from './errors.js';

const MODES = ['auto', 't2v', 'i2v', 'r2v'];
const U32_MAX = 0xffff_ffff;
const S64_MIN = -(2n ** 63n);
const S64_MAX = 2n ** 63n - 1n;

/**
 * The request's fields: the camelCase name, the provider's wire spelling (used in violations,
 * as the component uses it), and how to check and convert a value that is not undefined.
 */
const FIELDS = {
  model: { wire: 'model', check: string },
  prompt: { wire: 'prompt', check: string },
  mode: { wire: 'mode', check: oneOf(MODES) },
  images: { wire: 'image', check: stringList },
  aspectRatio: { wire: 'aspect_ratio', check: string },
  resolution: { wire: 'resolution', check: string },
  durationSeconds: { wire: 'duration', check: u32 },
  seed: { wire: 'seed', check: s64 },
  watermark: { wire: 'watermark', check: boolean },
};

/**
 * A `VideoRequest` to jco's `video-request`, or a `permanent-invalid-request` error listing
 * every field of the wrong shape.
 * @param {unknown} request
 * @returns {any}
 */
export function toWitRequest(request) {
  if (request === null || typeof request !== 'object' || Array.isArray(request)) {
    throw invalidRequest([
      { field: 'request', rule: 'wrong-type', message: 'the request must be an object with at least a prompt' },
    ]);
  }
  const violations = [];
  const out = { images: [] };
  for (const [key, value] of Object.entries(request)) {
    const field = Object.prototype.hasOwnProperty.call(FIELDS, key) ? FIELDS[key] : undefined;
    if (field === undefined) {
      violations.push({
        field: key,
        rule: 'unknown-field',
        message: `${key} is not a request field; the fields are ${Object.keys(FIELDS).join(', ')}`,
      });
      continue;
    }
    if (value === undefined) continue;
    const checked = field.check(value);
    if (checked.ok) out[key] = checked.value;
    else violations.push({ field: field.wire, rule: 'wrong-type', message: `${key} ${checked.expected}, not ${describe(value)}` });
  }
  if (out.prompt === undefined && !violations.some((v) => v.field === 'prompt')) {
    violations.push({ field: 'prompt', rule: 'required', message: 'prompt is required: describe the scene to generate' });
  }
  if (violations.length > 0) throw invalidRequest(violations);
  return out;
}

/**
 * Optional price overrides for `estimateCost` to jco's `list<resolution-rate>`.
 * @param {unknown} rates
 */
export function toWitRates(rates) {
  if (rates === undefined) return undefined;
  const violations = [];
  const out = [];
  if (!Array.isArray(rates)) {
    violations.push({ field: 'rates', rule: 'wrong-type', message: 'rates must be an array of { resolution, microsPerSecond }' });
  } else {
    rates.forEach((rate, i) => {
      const resolution = string(rate?.resolution);
      const micros = u64(rate?.microsPerSecond);
      if (!resolution.ok || !micros.ok) {
        violations.push({
          field: `rates[${i}]`,
          rule: 'wrong-type',
          message: 'each rate is { resolution: string, microsPerSecond: a non-negative integer }',
        });
      } else {
        out.push({ resolution: resolution.value, microsPerSecond: micros.value });
      }
    });
  }
  if (violations.length > 0) throw invalidRequest(violations);
  return out;
}

/**
 * A job id as the caller passed it: a non-empty string, or a TypeError (a programming error,
 * not a request the provider could refuse).
 * @param {unknown} jobId
 * @returns {string}
 */
export function checkJobId(jobId) {
  if (typeof jobId !== 'string' || jobId.length === 0) {
    throw new TypeError(`jobId must be a non-empty string, not ${describe(jobId)}`);
  }
  return jobId;
}

function string(v) {
  return typeof v === 'string' ? { ok: true, value: v } : { ok: false, expected: 'must be a string' };
}

function boolean(v) {
  return typeof v === 'boolean' ? { ok: true, value: v } : { ok: false, expected: 'must be true or false' };
}

function oneOf(values) {
  return (v) =>
    values.includes(v) ? { ok: true, value: v } : { ok: false, expected: `must be one of ${values.join(', ')}` };
}

function stringList(v) {
  return Array.isArray(v) && v.every((s) => typeof s === 'string')
    ? { ok: true, value: [...v] }
    : { ok: false, expected: 'must be an array of URL strings' };
}

function u32(v) {
  return Number.isInteger(v) && v >= 0 && v <= U32_MAX
    ? { ok: true, value: v }
    : { ok: false, expected: 'must be a whole number of seconds' };
}

// Signed and 64-bit in the contract so that -1 reaches the component and is refused there
// with the provider's range; only what cannot be carried at all is refused here.
function s64(v) {
  const big = typeof v === 'bigint' ? v : Number.isSafeInteger(v) ? BigInt(v) : undefined;
  return big !== undefined && big >= S64_MIN && big <= S64_MAX
    ? { ok: true, value: big }
    : { ok: false, expected: 'must be an integer (a number or a bigint)' };
}

function u64(v) {
  const big = typeof v === 'bigint' ? v : Number.isSafeInteger(v) ? BigInt(v) : undefined;
  return big !== undefined && big >= 0n && big < 2n ** 64n ? { ok: true, value: big } : { ok: false };
}

function describe(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}
