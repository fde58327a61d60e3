// A TypeScript consumer of the installed package: test-package.sh compiles it with
// `tsc --strict --noEmit --module nodenext` and never runs it. It uses every public name, so
// a declaration that is missing, wrong or not strict-clean fails the build of the package.

import {
  Client,
  DEFAULT_BASE_URL,
  HappyHorseError,
  type ClientOptions,
  type CostEstimate,
  type ErrorKind,
  type JobResult,
  type JobStatus,
  type ValidatedRequest,
  type WitErrorCase,
  type VideoRequest,
} from 'happyhorse';

const options: ClientOptions = {
  apiKey: 'emulator-key',
  baseUrl: DEFAULT_BASE_URL,
  connectTimeoutMs: 10_000,
  firstByteTimeoutMs: 30_000,
  betweenBytesTimeoutMs: 15_000,
  maxResponseBytes: 1 << 20,
  poll: { minIntervalMs: 200, deadlineMs: 60_000 },
};
const client = new Client(options);
const base: string = client.baseUrl;

const request: VideoRequest = {
  prompt: 'A horse gallops along a beach at sunset.',
  mode: 'auto',
  images: [],
  aspectRatio: '16:9',
  resolution: '720p',
  durationSeconds: 5,
  seed: 7,
  watermark: false,
  model: 'happyhorse-1-1',
};
const withBigSeed: VideoRequest = { prompt: 'x', seed: 7n };

export async function consume(): Promise<string[]> {
  const validated: ValidatedRequest = await client.validate(request);
  const normalizedImages: string[] = validated.request.images;
  const seed: number | undefined = validated.request.seed;
  const cost: CostEstimate = await client.estimateCost(withBigSeed, {
    rates: [{ resolution: '720p', microsPerSecond: 140_000 }],
  });
  const total: number = cost.totalMicros;

  const jobId: string = await client.submit(request);
  const status: JobStatus = await client.poll(jobId);
  const progress: number | undefined = status.state === 'running' ? status.progress : undefined;

  const controller = new AbortController();
  try {
    const result: JobResult = await client.generate(request, { signal: controller.signal });
    const waited: JobResult = await client.wait(result.jobId, { signal: controller.signal });
    return [...waited.outputs, ...normalizedImages, String(seed), String(total), String(progress), base];
  } catch (e) {
    if (!(e instanceof HappyHorseError)) throw e;
    const kind: ErrorKind = e.kind;
    const resume: string | undefined = e.jobId;
    const permanent: boolean = e.permanent;
    const witCase: WitErrorCase | undefined = e.case;
    void witCase;
    if (e.is('invalid-request')) {
      return e.data.map((v) => `${v.field} ${v.rule}: ${v.message}`);
    }
    if (e.is('timeout')) {
      const last: JobStatus | undefined = e.data.lastStatus;
      return [e.data.jobId, last?.state ?? 'unknown'];
    }
    if (e.is('rate-limited')) {
      const wait: number | undefined = e.data.retryAfterMs;
      return [String(wait)];
    }
    if (e.is('transport-error')) {
      return [e.data.kind, e.data.message];
    }
    if (e.is('aborted') && resume !== undefined) {
      return (await client.wait(resume)).outputs;
    }
    return [kind, String(permanent), e.message];
  }
}
