#!/usr/bin/env node
// One HappyHorse 1.1 generation from Node.js, with the `happyhorse` package.
//
// Install the tarball `cargo xtask dist` writes (npm install dist/npm/happyhorse-*.tgz), then:
//
//   EMPIRIOLABS_API_KEY=... node generate.mjs --prompt "A horse gallops along a beach at sunset."
//
// Prints the estimate, the job id as soon as it exists, the output URLs; --download DIR saves
// the clips; --json ends with one summary line (the tests read it). Ctrl-C stops waiting and
// prints the id to resume with (--resume); the job goes on at the provider.

import { parseArgs } from 'node:util';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Client, HappyHorseError } from 'happyhorse';

const { values: args } = parseArgs({
  options: {
    'base-url': { type: 'string', default: process.env.EMPIRIOLABS_BASE_URL },
    key: { type: 'string' },
    prompt: { type: 'string', default: 'A horse gallops along a beach at sunset.' },
    resolution: { type: 'string' },
    duration: { type: 'string' },
    deadline: { type: 'string' },
    'fast-poll': { type: 'boolean', default: false },
    'request-timeout': { type: 'string' },
    resume: { type: 'string' },
    download: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});

const seconds = (s) => (s === undefined ? undefined : Math.round(Number(s) * 1000));
const client = new Client({
  apiKey: args.key,
  baseUrl: args['base-url'],
  firstByteTimeoutMs: seconds(args['request-timeout']),
  betweenBytesTimeoutMs: seconds(args['request-timeout']),
  poll: {
    ...(args['fast-poll'] ? { minIntervalMs: 200, maxIntervalMs: 1000 } : {}),
    ...(args.deadline ? { deadlineMs: seconds(args.deadline) } : {}),
  },
});
const request = { prompt: args.prompt, resolution: args.resolution };
if (args.duration) request.durationSeconds = Number(args.duration);

const stop = new AbortController();
process.once('SIGINT', () => stop.abort());
const summary = { host: 'node', job_id: args.resume };
let code = 0;
try {
  if (!args.resume) {
    const cost = await client.estimateCost(request);
    console.log(`estimated cost: ${(cost.totalMicros / 1e6).toFixed(2)} ${cost.currency}`);
    summary.job_id = await client.submit(request);
    console.log(`job ${summary.job_id} (resume with --resume ${summary.job_id})`);
  }
  const { jobId, outputs } = await client.wait(summary.job_id, { signal: stop.signal });
  Object.assign(summary, { state: 'completed', outputs });
  console.log(`job ${jobId}: completed`, ...outputs.map((url) => `\n${url}`));
} catch (error) {
  if (!(error instanceof HappyHorseError)) throw error;
  // The WIT's spelling of the case, as every host's example reports it.
  Object.assign(summary, { state: 'error', error: error.case ?? error.kind, message: error.message });
  console.error(`error: ${error.message}`);
  code = 1;
}
if (args.download && summary.state === 'completed') {
  try {
    summary.files = await download(summary.outputs, args.download, summary.job_id);
  } catch (failure) {
    // The job is done and paid for: resuming it gives fresh URLs.
    summary.download_error = String(failure);
    console.error(`download failed (resume the job for fresh URLs): ${failure}`);
    code = 1;
  }
}
if (args.json) console.log(JSON.stringify(summary));
process.exitCode = code;

/** Save each output URL (signed, short-lived) as DIR/<job id>[-n].mp4. */
async function download(urls, directory, jobId) {
  await mkdir(directory, { recursive: true });
  const saved = [];
  for (const [i, url] of urls.entries()) {
    const file = path.join(directory, `${jobId}${urls.length > 1 ? `-${i}` : ''}.mp4`);
    const response = await fetch(url);
    if (!response.ok) throw new Error(`downloading ${url}: HTTP ${response.status}`);
    await writeFile(file, Buffer.from(await response.arrayBuffer()));
    saved.push({ path: file });
    console.log(`saved: ${file}`);
  }
  return saved;
}
