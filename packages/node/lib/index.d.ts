// Types of the `happyhorse` package. Hand-written: this is the package's API, a thin layer
// over the `videogen:api/video-gen@0.3.0` component; jco's generated types are not shipped.

/** How the provider should interpret the request. */
export type Mode = 'auto' | 't2v' | 'i2v' | 'r2v';

/** One video generation request. Fields left out take the provider's defaults. */
export interface VideoRequest {
  /** The scene to generate (up to 2500 Unicode scalar values for HappyHorse 1.1). */
  prompt: string;
  /** `auto` (the default) decides from the images: none t2v, one i2v, several r2v. */
  mode?: Mode;
  /** Reference images as `https://`/`http://` URLs or base64 `data:` URLs. */
  images?: string[];
  /** Such as `"16:9"`; `validate` lists the allowed values. Ignored in i2v. */
  aspectRatio?: string;
  /** Such as `"720p"` or `"1080p"`. */
  resolution?: string;
  /** Clip length in whole seconds. */
  durationSeconds?: number;
  /** Seed for a repeatable result. */
  seed?: number | bigint;
  /** Whether the provider watermarks the output. */
  watermark?: boolean;
  /** The model id; defaults to `happyhorse-1-1`. */
  model?: string;
}

/** A request as `validate` returns it: every default filled in. */
export interface NormalizedRequest extends Omit<VideoRequest, 'images' | 'seed'> {
  images: string[];
  seed?: number;
}

/** One rule a request broke. `field` is the provider's wire spelling (`duration`, `image`, …). */
export interface FieldViolation {
  field: string;
  /** A stable rule name, such as `out-of-range`, `too-long`, `wrong-type`. */
  rule: string;
  /** A sentence for a person. */
  message: string;
}

/** Something `validate` accepted that will not do what the caller may expect. */
export interface FieldWarning {
  field: string;
  message: string;
}

/** The outcome of `validate`. */
export interface ValidatedRequest {
  request: NormalizedRequest;
  warnings: FieldWarning[];
}

/** A price override for `estimateCost`, in millionths of a currency unit per second. */
export interface ResolutionRate {
  resolution: string;
  microsPerSecond: number | bigint;
}

/** What a request will cost if it succeeds. Amounts in micro-units (700000 = 0.70). */
export interface CostEstimate {
  /** ISO 4217, such as `USD`. */
  currency: string;
  billedSeconds: number;
  microsPerSecond: number;
  totalMicros: number;
}

/** How `wait` spaces its polls. Any field left out takes the contract's default. */
export interface PollPolicy {
  /** Shortest delay between two polls, ms (default 5000). */
  minIntervalMs: number;
  /** Longest delay between two polls, ms (default 15000). */
  maxIntervalMs: number;
  /** How long `wait` may take in all before `timeout`, ms (default 900000). */
  deadlineMs: number;
  /** Retries of one request after a 429, a 5xx on a read, or a connection never made (default 4). */
  maxRetries: number;
}

/** Options of a Client. */
export interface ClientOptions {
  /** The API key; defaults to `process.env.EMPIRIOLABS_API_KEY` when the Client is made. */
  apiKey?: string;
  /** The API base URL; defaults to `https://api.empiriolabs.ai`. The component may reach this origin only. */
  baseUrl?: string;
  /** Connect timeout per request, ms (default 10000). */
  connectTimeoutMs?: number;
  /** Wait for the start of each answer, ms (default 30000). */
  firstByteTimeoutMs?: number;
  /** Longest pause inside one answer, ms (default 15000). */
  betweenBytesTimeoutMs?: number;
  /** Largest response body accepted, bytes (default 1048576). */
  maxResponseBytes?: number;
  /** Poll spacing and the `wait` deadline. */
  poll?: Partial<PollPolicy>;
}

/**
 * What `signal` uses of an `AbortSignal`. Declared here so that these types compile with
 * neither the DOM lib nor `@types/node`; any real `AbortSignal` fits.
 */
export interface AbortSignalLike {
  readonly aborted: boolean;
  readonly reason?: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** Options of the calls that may run for minutes. */
export interface CallOptions {
  /**
   * Stops the call with a HappyHorseError of kind `aborted`. After the submit its `jobId`
   * names the job, which goes on at the provider: resume with `wait(jobId)`. An abort that
   * arrives while `generate` is submitting waits for the submit's answer, so a job is never
   * left without its id.
   */
  signal?: AbortSignalLike;
}

/** Where a job stands. */
export type JobState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled' | 'expired';

/** Why a job failed, as the provider put it. */
export interface JobFailure {
  code: string;
  message: string;
}

/**
 * A job's progress as the provider wrote it, before scaling. One reading alone cannot always
 * tell a fraction from a percentage: a job that ever writes a number above 1, or a `%`,
 * reports percentages, and its earlier readings too.
 */
export interface ProgressReading {
  /** The number written, 0 to 100. */
  value: number;
  /** Whether it was written with a `%`. */
  markedPercent: boolean;
}

/** One reading of a job. */
export interface JobStatus {
  jobId: string;
  state: JobState;
  /** 0 to 1 from this one reading, when the job is running and the provider reports progress. */
  progress?: number;
  /** The progress as written, whatever the state, to settle the job's scale across readings. */
  progressReading?: ProgressReading;
  /** The output URLs, when completed (signed and short-lived: download promptly). */
  outputs?: string[];
  /** Why, when failed. */
  failure?: JobFailure;
  /** The provider's own status word, verbatim. */
  rawStatus: string;
  createdAt?: string;
  completedAt?: string;
  /** The suggested delay before polling again, ms. */
  nextPollMs: number;
}

/** A job that completed. */
export interface JobResult {
  jobId: string;
  /** Output video URLs, in the provider's order. */
  outputs: string[];
  status: JobStatus;
}

/** An error the provider returned. `status` is 0 when the component found it before sending. */
export interface ApiError {
  status: number;
  code?: string;
  message: string;
}

/** How a request failed below HTTP. `denied`: refused before sending (not the API origin). */
export interface TransportFailure {
  kind: 'dns' | 'connect' | 'denied' | 'tls' | 'interrupted' | 'other';
  message: string;
}

/** The payload of each error kind. */
export interface ErrorData {
  /** The request broke these rules; nothing was sent. */
  'invalid-request': FieldViolation[];
  /** The key is missing, malformed or refused. */
  unauthorized: ApiError;
  /** The account cannot pay for this job. */
  'insufficient-credits': ApiError;
  /** The request budget is spent, even after retries. */
  'rate-limited': { retryAfterMs?: number; message: string };
  /** The job ended as failed, cancelled or expired. */
  'job-failed': { jobId: string; failure: JobFailure };
  /** The provider does not know this job id; the payload is the id. */
  'not-found': string;
  /** The provider failed even after retries. */
  'server-error': ApiError;
  /** No HTTP response. */
  'transport-error': TransportFailure;
  /** A submit was sent but its outcome is unknown: the job may exist and be billed. Do not resubmit blindly. */
  'submit-outcome-unknown': { message: string };
  /** `wait` reached its deadline; the job goes on: resume with `wait(jobId)`. */
  timeout: { jobId: string; lastStatus?: JobStatus };
  /** The provider's answer could not be read. */
  'malformed-response': ApiError;
  /** The component trapped or its worker died. */
  'execution-failed': undefined;
  /** This package's own: the caller's AbortSignal stopped the call. */
  aborted: { jobId?: string };
  /** This package's own: the bundled component could not be loaded. */
  'component-unavailable': { reason: string };
}

/**
 * The error kinds: the WIT `error` cases without their `permanent-` prefix, plus `aborted` and
 * `component-unavailable`.
 */
export type ErrorKind = keyof ErrorData;

/** The WIT `error` cases as the WIT spells them. */
export type WitErrorCase =
  | 'permanent-invalid-request'
  | 'permanent-unauthorized'
  | 'insufficient-credits'
  | 'rate-limited'
  | 'job-failed'
  | 'not-found'
  | 'server-error'
  | 'transport-error'
  | 'permanent-submit-outcome-unknown'
  | 'timeout'
  | 'malformed-response'
  | 'execution-failed';

/** Every way a call of this package fails. */
export class HappyHorseError<K extends ErrorKind = ErrorKind> extends Error {
  /** The error case without its `permanent-` prefix (`invalid-request`, `timeout`, …), or `aborted` / `component-unavailable`. */
  readonly kind: K;
  /** The WIT case exactly as the contract spells it (`permanent-invalid-request`, …); `undefined` for this package's own kinds. */
  readonly case: WitErrorCase | undefined;
  /** The case's payload. Narrow with `is(kind)`. */
  readonly data: ErrorData[K];
  /** The job this error is about, when one was submitted: resume with `wait(jobId)`, never submit again. */
  readonly jobId: string | undefined;
  /** True for the contract's `permanent-*` cases: retrying unchanged will not help, or may pay twice. */
  readonly permanent: boolean;
  /** Whether this error is of `kind`; narrows `data` in TypeScript. */
  is<T extends ErrorKind>(kind: T): this is HappyHorseError<T>;
}

/** The provider's public endpoint. */
export declare const DEFAULT_BASE_URL: 'https://api.empiriolabs.ai';

/**
 * A client of the HappyHorse 1.1 API. Each call runs the bundled component in a worker thread
 * of its own: none blocks the event loop, and calls may run concurrently. Every rejection is a
 * `HappyHorseError`, except a `TypeError`/`RangeError` for misuse (bad options, a non-string job id).
 */
export class Client {
  constructor(options?: ClientOptions);
  /** The API base URL this client talks to. */
  readonly baseUrl: string;
  /** Check a request against every rule, offline. */
  validate(request: VideoRequest): Promise<ValidatedRequest>;
  /** What a request will cost if it succeeds, offline. */
  estimateCost(request: VideoRequest, options?: { rates?: ResolutionRate[] }): Promise<CostEstimate>;
  /** Validate and submit one job; resolves to its id. Persist it before waiting. */
  submit(request: VideoRequest): Promise<string>;
  /** Read a job's state once. */
  poll(jobId: string): Promise<JobStatus>;
  /** Poll a job until it completes (or fails, or the poll deadline passes: `timeout`). */
  wait(jobId: string, options?: CallOptions): Promise<JobResult>;
  /** Submit, then wait. Any error after the submit carries `jobId`: resume with `wait(jobId)`. */
  generate(request: VideoRequest, options?: CallOptions): Promise<JobResult>;
}
