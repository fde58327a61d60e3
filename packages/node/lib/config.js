// Client options, checked once in the constructor, to jco's `client-config`.

/** The provider's public endpoint, the contract's default `base-url`. */
export const DEFAULT_BASE_URL = 'https://api.empiriolabs.ai';

/** The contract's poll-policy defaults, used for the fields a caller leaves out. */
export const DEFAULT_POLL = Object.freeze({
  minIntervalMs: 5_000,
  maxIntervalMs: 15_000,
  deadlineMs: 900_000,
  maxRetries: 4,
});

const U32_KNOBS = ['connectTimeoutMs', 'firstByteTimeoutMs', 'betweenBytesTimeoutMs', 'maxResponseBytes'];
const KNOWN = new Set(['apiKey', 'baseUrl', 'poll', ...U32_KNOBS]);

/**
 * The options a Client was made with, settled: the key resolved, the base URL checked, the
 * rest as jco's `client-config` (without the key, which goes into the worker's environment).
 * @param {import('./index.js').ClientOptions} [options]
 * @returns {{ apiKey: string | undefined, origin: string, config: any }}
 */
export function settleOptions(options = {}) {
  if (options === null || typeof options !== 'object') throw new TypeError('Client options must be an object');
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw new TypeError(`unknown Client option ${key}; the options are ${[...KNOWN].join(', ')}`);
  }
  const apiKey = options.apiKey ?? process.env.EMPIRIOLABS_API_KEY;
  if (apiKey !== undefined && typeof apiKey !== 'string') throw new TypeError('apiKey must be a string');

  const baseUrl = options.baseUrl ?? DEFAULT_BASE_URL;
  let url;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new TypeError(`baseUrl must be an absolute http(s) URL, not ${JSON.stringify(baseUrl)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`baseUrl must be an http(s) URL, not ${JSON.stringify(baseUrl)}`);
  }

  const config = { baseUrl };
  for (const key of U32_KNOBS) {
    if (options[key] !== undefined) config[key] = u32(key, options[key]);
  }
  if (options.poll !== undefined) config.poll = pollPolicy(options.poll);
  return { apiKey: apiKey || undefined, origin: url.origin, config };
}

// The contract takes all four fields or none; a caller may give any of them.
function pollPolicy(poll) {
  if (poll === null || typeof poll !== 'object') throw new TypeError('poll must be an object');
  const merged = { ...DEFAULT_POLL, ...poll };
  for (const key of Object.keys(poll)) {
    if (!(key in DEFAULT_POLL)) throw new TypeError(`unknown poll option ${key}; the options are ${Object.keys(DEFAULT_POLL).join(', ')}`);
  }
  const deadline = merged.deadlineMs;
  if (!Number.isSafeInteger(deadline) || deadline < 0) throw new RangeError('poll.deadlineMs must be a non-negative integer');
  return {
    minIntervalMs: u32('poll.minIntervalMs', merged.minIntervalMs),
    maxIntervalMs: u32('poll.maxIntervalMs', merged.maxIntervalMs),
    deadlineMs: BigInt(deadline), // a u64: BigInt in jco
    maxRetries: u32('poll.maxRetries', merged.maxRetries),
  };
}

function u32(name, value) {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new RangeError(`${name} must be an integer from 0 to 4294967295`);
  }
  return value;
}
