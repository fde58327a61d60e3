#!/usr/bin/env node
// Generate one HappyHorse 1.1 video from Node.js, through the video-gen WebAssembly component
// transpiled by jco (`npm run transpile -- path/to/happyhorse_component.wasm` first).
//
//   node generate.mjs --base-url http://127.0.0.1:8787 --prompt "A horse gallops along a beach."
//
// The key comes from --key or EMPIRIOLABS_API_KEY, the base URL from --base-url or
// EMPIRIOLABS_BASE_URL (default: the real service). The component runs in a worker thread;
// this thread stays free (it prints a heartbeat, and could serve requests) and downloads the
// output. Exit codes: 0 completed, 1 the job or the call failed, 2 usage.

import { Worker } from 'node:worker_threads';
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const usage = `usage: node generate.mjs [--base-url URL] [--key KEY] [--prompt TEXT] [--image URL]...
       [--aspect-ratio R] [--resolution R] [--duration S] [--seed N] [--deadline S] [--fast-poll]
       [--request-timeout S]
       [--resume JOB_ID] [--download DIR] [--bindings DIR] [--json]`;

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      'base-url': { type: 'string', default: process.env.EMPIRIOLABS_BASE_URL },
      key: { type: 'string', default: process.env.EMPIRIOLABS_API_KEY },
      prompt: { type: 'string', default: 'A horse gallops along a beach at sunset.' },
      image: { type: 'string', multiple: true, default: [] },
      'aspect-ratio': { type: 'string' },
      resolution: { type: 'string' },
      duration: { type: 'string' },
      seed: { type: 'string' },
      deadline: { type: 'string' },
      'fast-poll': { type: 'boolean', default: false },
      'request-timeout': { type: 'string' },
      resume: { type: 'string' },
      download: { type: 'string' },
      bindings: { type: 'string', default: fileURLToPath(new URL('./generated', import.meta.url)) },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (e) {
  console.error(`${e.message}\n${usage}`);
  process.exit(2);
}
if (args.help) {
  console.log(usage);
  process.exit(0);
}
if (!args.key) {
  console.error('no API key: pass --key or set EMPIRIOLABS_API_KEY');
  process.exit(2);
}
if (!existsSync(path.join(args.bindings, 'happyhorse.js'))) {
  console.error(
    `no bindings in ${args.bindings}: run \`npm run transpile -- path/to/happyhorse_component.wasm\` first`,
  );
  process.exit(2);
}

const request = {
  prompt: args.prompt,
  images: args.image,
  aspectRatio: args['aspect-ratio'],
  resolution: args.resolution,
  durationSeconds: args.duration === undefined ? undefined : Number(args.duration),
  seed: args.seed === undefined ? undefined : BigInt(args.seed),
};

// Fast polling suits an emulator whose jobs finish in seconds, not the real service;
// without either flag the component's defaults apply (5 s backing off to 15 s, 15 min).
let poll;
if (args['fast-poll'] || args.deadline !== undefined) {
  const [minIntervalMs, maxIntervalMs] = args['fast-poll'] ? [200, 1000] : [5000, 15000];
  const deadlineMs = Math.round(Number(args.deadline ?? 900) * 1000);
  poll = { minIntervalMs, maxIntervalMs, deadlineMs, maxRetries: 4 };
}

const say = (line) => (args.json ? console.error(line) : console.log(line));
const summary = { host: 'node', job_id: args.resume ?? null };
const started = Date.now();

const worker = new Worker(new URL('./worker.mjs', import.meta.url), {
  workerData: {
    bindings: args.bindings,
    baseUrl: args['base-url'],
    request,
    resume: args.resume,
    poll,
    // Seconds to wait for an answer to start, and the longest pause inside one (the
    // component's defaults, 30 s and 15 s, when unset).
    requestTimeoutMs:
      args['request-timeout'] === undefined ? undefined : Math.round(Number(args['request-timeout']) * 1000),
  },
  // The component's whole environment: the key, nothing else from this process.
  env: { EMPIRIOLABS_API_KEY: args.key },
});

// The worker blocks inside the component; this thread does not.
const heartbeat = setInterval(() => {
  say(`  ... ${Math.round((Date.now() - started) / 1000)} s, the main thread is free`);
}, 2000);

let exitCode = 1;
worker.on('message', async (message) => {
  switch (message.type) {
    case 'warning':
      console.error(`warning: ${message.warning.field}: ${message.warning.message}`);
      break;
    case 'cost': {
      const { totalMicros, currency, billedSeconds } = message.cost;
      say(`estimated cost: ${(Number(totalMicros) / 1e6).toFixed(2)} ${currency} for ${billedSeconds} s`);
      break;
    }
    case 'submitted':
      summary.job_id = message.jobId;
      say(`submitted job ${message.jobId} (resume with --resume ${message.jobId})`);
      break;
    case 'status':
      say(`job ${message.jobId}: ${stateLabel(message.state)}`);
      break;
    case 'completed':
      Object.assign(summary, { state: 'completed', outputs: message.outputs });
      say(`job ${message.jobId}: completed`);
      for (const url of message.outputs) say(`output: ${url}`);
      exitCode = 0;
      break;
    case 'error':
      Object.assign(summary, { state: 'error', error: message.error.tag, message: describe(message.error) });
      console.error(`error: ${describe(message.error)}`);
      break;
    case 'trap':
      Object.assign(summary, { state: 'trap', message: message.message });
      console.error(`the component trapped: ${message.message}`);
      break;
  }
});
worker.on('error', (e) => {
  Object.assign(summary, { state: 'trap', message: String(e) });
  console.error(`the worker failed: ${e.stack ?? e}`);
});
worker.on('exit', async () => {
  clearInterval(heartbeat);
  if (exitCode === 0 && args.download && summary.outputs?.length) {
    try {
      summary.files = await download(summary.outputs, args.download, summary.job_id);
      for (const file of summary.files) say(`saved: ${file.path} (${file.bytes} bytes)`);
    } catch (e) {
      console.error(`download failed (the job is done: poll it again for fresh URLs): ${e.message}`);
      summary.downloadError = e.message;
      exitCode = 1;
    }
  }
  if (args.json) console.log(JSON.stringify(summary));
  process.exitCode = exitCode;
});

function stateLabel(state) {
  if (state.tag === 'running' && state.val !== undefined) return `running ${Math.round(state.val * 100)}%`;
  return state.tag;
}

// The WIT `error` variant, for a person.
function describe(error) {
  const { tag, val } = error;
  switch (tag) {
    case 'permanent-invalid-request':
      return `${tag}: ${val.map((v) => `${v.field}: ${v.message}`).join('; ')}`;
    case 'timeout':
      return `${tag}: job ${val.jobId} is still running (resume it with --resume ${val.jobId})`;
    case 'job-failed':
      return `${tag}: job ${val.jobId}: ${val.failure.code}: ${val.failure.message}`;
    case 'not-found':
      return `${tag}: job ${val}`;
    case 'transport-error':
      return `${tag}: ${val.kind}: ${val.message}`;
    case 'execution-failed':
      return tag;
    default:
      return `${tag}: ${[val?.code, val?.message].filter(Boolean).join(': ')}`;
  }
}

async function download(urls, dir, jobId) {
  await mkdir(dir, { recursive: true });
  const files = [];
  for (const [i, url] of urls.entries()) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
    const bytes = Buffer.from(await response.arrayBuffer());
    const file = path.join(dir, `${jobId}${urls.length > 1 ? `-${i}` : ''}.mp4`);
    await writeFile(file, bytes);
    files.push({ path: file, bytes: bytes.length });
  }
  return files;
}
