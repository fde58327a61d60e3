// The Client: the contract's six functions as Promises, with this package's shapes.

import { settleOptions } from './config.js';
import { toCostEstimate, toJobResult, toJobStatus, toValidatedRequest } from './convert.js';
import { checkJobId, toWitRates, toWitRequest } from './request.js';
import { runInWorker } from './runner.js';

/**
 * A client of the HappyHorse 1.1 API, through the bundled `videogen:api/video-gen@0.3.0`
 * component. Every call runs the component in a worker thread of its own, so none blocks the
 * event loop, and calls may run concurrently.
 */
export class Client {
  #apiKey;
  #origin;
  #config;

  /**
   * @param {import('./index.js').ClientOptions} [options]
   */
  constructor(options) {
    const { apiKey, origin, config } = settleOptions(options);
    this.#apiKey = apiKey;
    this.#origin = origin;
    this.#config = config;
  }

  /** The API base URL this client talks to. */
  get baseUrl() {
    return this.#config.baseUrl;
  }

  /**
   * Check a request against every rule, offline.
   * @param {import('./index.js').VideoRequest} request
   */
  async validate(request) {
    return toValidatedRequest(await this.#run('validate', { request: toWitRequest(request) }));
  }

  /**
   * What a request will cost if it succeeds, offline.
   * @param {import('./index.js').VideoRequest} request
   * @param {{ rates?: import('./index.js').ResolutionRate[] }} [options]
   */
  async estimateCost(request, options = {}) {
    const args = { request: toWitRequest(request), rates: toWitRates(options.rates) };
    return toCostEstimate(await this.#run('estimateCost', args));
  }

  /**
   * Validate and submit one job; resolves to its id. Persist the id before waiting.
   * @param {import('./index.js').VideoRequest} request
   */
  async submit(request) {
    return this.#run('submit', { config: this.#config, request: toWitRequest(request) });
  }

  /**
   * Read a job's state once.
   * @param {string} jobId
   */
  async poll(jobId) {
    checkJobId(jobId);
    return toJobStatus(await this.#run('poll', { config: this.#config, jobId }, { jobId }));
  }

  /**
   * Poll a job until it completes, fails or the poll deadline passes.
   * @param {string} jobId
   * @param {{ signal?: AbortSignal }} [options]
   */
  async wait(jobId, options = {}) {
    checkJobId(jobId);
    const value = await this.#run('wait', { config: this.#config, jobId }, { jobId, signal: options.signal });
    return toJobResult(value);
  }

  /**
   * Submit, then wait. An error after the submit carries `jobId`: resume with `wait(jobId)`.
   * @param {import('./index.js').VideoRequest} request
   * @param {{ signal?: AbortSignal }} [options]
   */
  async generate(request, options = {}) {
    const args = { config: this.#config, request: toWitRequest(request) };
    return toJobResult(await this.#run('generate', args, { signal: options.signal }));
  }

  #run(op, args, { jobId, signal } = {}) {
    return runInWorker(op, args, { apiKey: this.#apiKey, origin: this.#origin, jobId, signal });
  }
}
