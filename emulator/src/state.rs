//! What an emulator remembers: jobs, the request log, the rate window, pending faults.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::clip::{ClipCache, ClipFault};
use crate::config::EmulatorConfig;
use crate::farm::{Farm, JobModel, JobShape};
use crate::faults::{Fault, FaultQueues, Route};
use crate::media::{UrlSigner, hex};
use crate::validation::GenerationRequest;

/// One request the emulator received, as recorded for tests to inspect. Never holds a key.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RequestRecord {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path without the query, e.g. `/v1/jobs/job_1f…`.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Status answered; `0` while no answer has been produced (or if the client left during a
    /// [`Fault::Delay`]).
    pub status: u16,
    /// Whether the request carried an accepted key (ordinary or broke).
    pub authorized: bool,
    /// The JSON body of a submit as received; `None` for other requests and unparsable bodies.
    pub body: Option<serde_json::Value>,
    /// When it arrived, measured from the emulator's start.
    pub at: Duration,
    /// The injected fault that handled it, described, if any.
    pub fault: Option<String>,
    /// The `Content-Length` it declared, if any: what a strict server reads the body by.
    pub content_length: Option<u64>,
    /// Whether it came with `Transfer-Encoding: chunked`.
    pub chunked: bool,
}

/// A job's failure, fixed when it is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JobError {
    pub code: String,
    pub message: String,
}

/// A created job; its state is derived from the time since creation.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub id: String,
    pub created: Instant,
    pub created_wall: SystemTime,
    pub request: GenerationRequest,
    pub failure: Option<JobError>,
    /// How long this job stays queued, fixed at creation (see `EmulatorConfig::queued_ms_range`).
    pub queued: Duration,
    /// How long it then runs, fixed at creation.
    pub running: Duration,
    /// When a poll first saw it ended: what a client's detection lag is measured against.
    pub first_seen_ended: Option<Instant>,
    /// How a render-farm job reports itself; `None` for a linear one.
    pub shape: Option<JobShape>,
    /// How its clip is served wrong, if it is: fixed at creation from the prompt's marker or
    /// the config.
    pub clip_fault: Option<ClipFault>,
    /// Progress readings its prompt asked for, one per poll while it runs (see
    /// [`ProgressScript`]).
    pub script: Option<ProgressScript>,
}

/// The progress a job writes poll by poll, as its prompt's `[emulator:progress=0.6,6,40]`
/// asked: each poll while it runs answers the next number exactly as written (so a test can
/// play a percent job whose first reading is under 1); the poll after the last finds it
/// ended. Its queue time stays as configured.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ProgressScript {
    /// The numbers, in order.
    pub readings: Vec<f64>,
    /// How many polls it has answered while running.
    pub served: usize,
}

impl ProgressScript {
    const OPEN: &'static str = "[emulator:progress=";

    /// The script in `prompt`, if it holds a well-formed marker: up to 100 numbers, each
    /// finite and from 0 to 100.
    pub fn in_prompt(prompt: &str) -> Option<ProgressScript> {
        let rest = &prompt[prompt.find(Self::OPEN)? + Self::OPEN.len()..];
        let list = &rest[..rest.find(']')?];
        let readings: Vec<f64> = list
            .split(',')
            .map(|n| n.trim().parse::<f64>().ok())
            .collect::<Option<_>>()?;
        let in_range = |n: &f64| n.is_finite() && (0.0..=100.0).contains(n);
        (!readings.is_empty() && readings.len() <= 100 && readings.iter().all(in_range)).then_some(
            ProgressScript {
                readings,
                served: 0,
            },
        )
    }

    /// The number the current poll answers: the one last served.
    pub fn written(&self) -> Option<f64> {
        self.served
            .checked_sub(1)
            .and_then(|i| self.readings.get(i))
            .copied()
    }
}

/// How long a scripted job runs before its readings are used up: longer than any test.
const SCRIPTED_RUNNING: Duration = Duration::from_secs(24 * 3600);

/// Where a job is at a given instant.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Phase {
    Queued,
    /// Running, with progress in `0.0..1.0`.
    Running(f64),
    Completed,
    Failed(JobError),
}

impl Job {
    /// The phase at `now` under the job's own timing.
    pub fn phase(&self, now: Instant) -> Phase {
        let elapsed = now.saturating_duration_since(self.created);
        let (queued, running) = (self.queued, self.running);
        if elapsed < queued {
            Phase::Queued
        } else if elapsed < queued + running {
            let fraction = (elapsed - queued).as_secs_f64() / running.as_secs_f64();
            Phase::Running(match &self.shape {
                Some(shape) => shape.progress(fraction),
                None => fraction,
            })
        } else {
            match &self.failure {
                Some(error) => Phase::Failed(error.clone()),
                None => Phase::Completed,
            }
        }
    }

    /// When the job ends (or ended), on the wall clock.
    pub fn completed_wall(&self) -> SystemTime {
        self.created_wall + self.queued + self.running
    }

    /// What the finished job costs, in USD, rounded to 1/10000 to hide float noise.
    pub fn cost_usd(&self) -> f64 {
        let raw = self.request.duration * self.request.resolution.usd_per_second();
        (raw * 10_000.0).round() / 10_000.0
    }
}

/// The outcome of counting a request against the rate window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RateDecision {
    Allowed,
    /// Refused; retry after this many whole seconds (at least 1).
    Limited(u64),
}

/// A sliding window (60 s unless configured otherwise) over the account's `/v1/*` requests.
#[derive(Debug, Default)]
pub(crate) struct RateWindow {
    hits: VecDeque<Instant>,
}

impl RateWindow {
    /// Counts a request at `now` if there is room under `limit` (0 = unlimited). A refused
    /// request is not counted, so waiting out `Retry-After` is always enough.
    pub fn try_hit(&mut self, limit: u32, window: Duration, now: Instant) -> RateDecision {
        self.expire(window, now);
        let limit = limit as usize;
        if limit == 0 || self.hits.len() < limit {
            self.hits.push_back(now);
            return RateDecision::Allowed;
        }
        // The window can hold more than `limit` hits (faulted requests are counted
        // unconditionally), so the slot frees when all but `limit - 1` have left.
        let frees_at = self.hits[self.hits.len() - limit] + window;
        let wait = frees_at.saturating_duration_since(now);
        RateDecision::Limited(wait.as_secs_f64().ceil().max(1.0) as u64)
    }

    /// Counts a request at `now` whatever the limit.
    pub fn force_hit(&mut self, window: Duration, now: Instant) {
        self.expire(window, now);
        self.hits.push_back(now);
    }

    fn expire(&mut self, window: Duration, now: Instant) {
        while self
            .hits
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= window)
        {
            self.hits.pop_front();
        }
    }
}

/// Everything mutable, behind one lock that is never held across an `.await`.
#[derive(Debug, Default)]
pub(crate) struct Data {
    pub jobs: HashMap<String, Job>,
    /// Job ids in creation order, for the usage listing.
    pub job_order: Vec<String>,
    pub requests: Vec<RequestRecord>,
    pub rate: RateWindow,
    pub faults: FaultQueues,
    /// The render farm, when the job model is one.
    pub farm: Option<Farm>,
    pub fail_next: Option<JobError>,
    pub submits_received: usize,
    pub jobs_created: usize,
}

/// The state shared by the server task and the [`Emulator`](crate::Emulator) handle.
pub(crate) struct Shared {
    pub config: EmulatorConfig,
    pub started: Instant,
    pub base_url: String,
    pub signer: UrlSigner,
    /// Rendered clips, under a lock of their own so a download never waits on the API.
    pub clips: ClipCache,
    data: Mutex<Data>,
}

/// Marks a prompt whose job must fail, so a client test can provoke a failure by input alone.
pub(crate) const FAIL_MARKER: &str = "[emulator:fail]";

impl Shared {
    /// Fresh state for `config`, serving output URLs under `base_url`.
    pub fn new(config: EmulatorConfig, base_url: String) -> Self {
        let farm = match &config.job_model {
            JobModel::RenderFarm(farm) => Some(Farm::new(farm.clone())),
            JobModel::Linear => None,
        };
        Self {
            config,
            started: Instant::now(),
            base_url,
            signer: UrlSigner::random(),
            clips: ClipCache::default(),
            data: Mutex::new(Data {
                farm,
                ..Data::default()
            }),
        }
    }

    /// The data lock. A panic elsewhere while it was held must not take the emulator down, so
    /// poisoning is ignored: every update below leaves the data consistent.
    pub fn data(&self) -> MutexGuard<'_, Data> {
        self.data
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Logs an arriving request and returns its index in the log.
    pub fn record_arrival(&self, record: RequestRecord, is_submit: bool) -> usize {
        let mut data = self.data();
        if is_submit {
            data.submits_received += 1;
        }
        data.requests.push(record);
        data.requests.len() - 1
    }

    /// Sets the status answered to logged request `index`.
    pub fn record_status(&self, index: usize, status: u16) {
        if let Some(record) = self.data().requests.get_mut(index) {
            record.status = status;
        }
    }

    /// Takes the fault (if any) for a request on `route`, noting it in the log entry `index`.
    pub fn take_fault(&self, route: Option<Route>, path: &str, index: usize) -> Option<Fault> {
        let mut data = self.data();
        let fault = data.faults.pop(route, path)?;
        if let Some(record) = data.requests.get_mut(index) {
            record.fault = Some(fault.describe());
        }
        Some(fault)
    }

    /// Creates a job for a validated request, deciding now whether it will fail.
    pub fn create_job(&self, request: GenerationRequest) -> Job {
        let mut data = self.data();
        let failure = data.fail_next.take().or_else(|| {
            request.prompt.contains(FAIL_MARKER).then(|| JobError {
                code: "content_policy_violation".into(),
                message: "the prompt was flagged by the content policy".into(),
            })
        });
        let config = &self.config;
        let clip_fault = ClipFault::in_prompt(&request.prompt).or(config.clip_fault);
        let script = ProgressScript::in_prompt(&request.prompt);
        let created = Instant::now();
        let (queued, running, shape) = match data.farm.as_mut() {
            Some(farm) => {
                let admission = farm.admit(&request, created);
                (admission.queued, admission.running, Some(admission.shape))
            }
            None => (
                Duration::from_millis(draw(config.queued_ms, config.queued_ms_range)),
                Duration::from_millis(draw(config.running_ms, config.running_ms_range)),
                None,
            ),
        };
        // A scripted job runs until its readings are used up, whatever its model says.
        let (running, shape) = match &script {
            Some(_) => (SCRIPTED_RUNNING, None),
            None => (running, shape),
        };
        let job = Job {
            id: format!("job_{}", hex(&rand::random::<[u8; 16]>())),
            created,
            created_wall: SystemTime::now(),
            request,
            failure,
            queued,
            running,
            first_seen_ended: None,
            shape,
            clip_fault,
            script,
        };
        data.jobs.insert(job.id.clone(), job.clone());
        data.job_order.push(job.id.clone());
        data.jobs_created += 1;
        job
    }

    /// A copy of the job with this id.
    pub fn job(&self, id: &str) -> Option<Job> {
        self.data().jobs.get(id).cloned()
    }

    /// A copy of the job with this id as a poll answered at `now` sees it, noting the first
    /// poll that finds it ended.
    pub fn poll_job(&self, id: &str, now: Instant) -> Option<Job> {
        let mut data = self.data();
        let job = data.jobs.get_mut(id)?;
        let running = matches!(job.phase(now), Phase::Running(_));
        if let Some(script) = job.script.as_mut().filter(|_| running) {
            if script.served < script.readings.len() {
                script.served += 1;
            } else {
                // Used up: the job ends now.
                job.running = now.saturating_duration_since(job.created + job.queued);
            }
        }
        if job.first_seen_ended.is_none()
            && matches!(job.phase(now), Phase::Completed | Phase::Failed(_))
        {
            job.first_seen_ended = Some(now);
        }
        Some(job.clone())
    }

    /// Copies of all jobs, in creation order.
    pub fn jobs_in_order(&self) -> Vec<Job> {
        let data = self.data();
        data.job_order
            .iter()
            .filter_map(|id| data.jobs.get(id).cloned())
            .collect()
    }
}

/// `fixed`, or a uniform draw from the inclusive `range` when one is configured (a reversed
/// range is read the right way round).
fn draw(fixed: u64, range: Option<(u64, u64)>) -> u64 {
    match range {
        None => fixed,
        Some((a, b)) => rand::random_range(a.min(b)..=a.max(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::{Mode, Resolution};

    const MINUTE: Duration = Duration::from_secs(60);

    fn request(duration: f64, resolution: Resolution) -> GenerationRequest {
        GenerationRequest {
            prompt: "p".into(),
            mode: Mode::Auto,
            images: Vec::new(),
            aspect_ratio: "16:9".into(),
            resolution,
            duration,
            seed: None,
            watermark: false,
        }
    }

    #[test]
    fn rate_window_slides_and_reports_wait() {
        let mut w = RateWindow::default();
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(
                w.try_hit(3, MINUTE, t0 + Duration::from_secs(i)),
                RateDecision::Allowed
            );
        }
        // The first hit (t0) leaves the window at t0+60 s: 50 s from t0+10 s.
        assert_eq!(
            w.try_hit(3, MINUTE, t0 + Duration::from_secs(10)),
            RateDecision::Limited(50)
        );
        assert_eq!(
            w.try_hit(3, MINUTE, t0 + Duration::from_millis(59_500)),
            RateDecision::Limited(1)
        );
        assert_eq!(
            w.try_hit(3, MINUTE, t0 + Duration::from_secs(60)),
            RateDecision::Allowed
        );
        assert_eq!(
            w.try_hit(0, MINUTE, t0),
            RateDecision::Allowed,
            "0 means unlimited"
        );
    }

    #[test]
    fn forced_hits_push_retry_after_out() {
        let mut w = RateWindow::default();
        let t0 = Instant::now();
        w.force_hit(MINUTE, t0);
        w.force_hit(MINUTE, t0 + Duration::from_secs(20));
        w.force_hit(MINUTE, t0 + Duration::from_secs(30));
        // Limit 2 with 3 in the window: a slot frees when the t0+20 s hit leaves.
        assert_eq!(
            w.try_hit(2, MINUTE, t0 + Duration::from_secs(40)),
            RateDecision::Limited(40)
        );
    }

    #[test]
    fn phases_follow_the_clock() {
        let config = EmulatorConfig {
            queued_ms: 100,
            running_ms: 200,
            ..EmulatorConfig::linear()
        };
        let shared = Shared::new(config.clone(), "http://x".into());
        let job = shared.create_job(request(5.0, Resolution::P720));
        let at = |ms| job.created + Duration::from_millis(ms);
        assert_eq!(job.phase(at(50)), Phase::Queued);
        assert_eq!(job.phase(at(200)), Phase::Running(0.5));
        assert_eq!(job.phase(at(300)), Phase::Completed);
        assert_eq!(job.cost_usd(), 0.7);
        assert_eq!(shared.job(&job.id).unwrap().id, job.id);
        assert!(job.id.starts_with("job_") && job.id.len() == 4 + 32);
    }

    #[test]
    fn ranges_give_each_job_its_own_timing() {
        let config = EmulatorConfig {
            queued_ms_range: Some((100, 200)),
            running_ms_range: Some((5_000, 3_000)),
            ..EmulatorConfig::linear()
        };
        let shared = Shared::new(config, "http://x".into());
        let jobs: Vec<Job> = (0..200)
            .map(|_| shared.create_job(request(5.0, Resolution::P720)))
            .collect();
        for job in &jobs {
            assert!((100..=200).contains(&job.queued.as_millis()), "{job:?}");
            assert!(
                (3_000..=5_000).contains(&job.running.as_millis()),
                "{job:?}"
            );
            let end = job.queued + job.running;
            assert_eq!(job.completed_wall(), job.created_wall + end);
            assert_eq!(job.phase(job.created + end), Phase::Completed);
            let half = job.queued + job.running / 2;
            match job.phase(job.created + half) {
                Phase::Running(p) => assert!((p - 0.5).abs() < 1e-3, "{p}"),
                other => panic!("{other:?}"),
            }
        }
        let distinct: std::collections::HashSet<_> = jobs.iter().map(|j| j.running).collect();
        assert!(distinct.len() > 10, "the running times vary");
        // Without ranges every job takes the fixed times, as before.
        let fixed = Shared::new(EmulatorConfig::linear(), "http://x".into())
            .create_job(request(5.0, Resolution::P720));
        assert_eq!(fixed.queued, Duration::from_millis(1_000));
        assert_eq!(fixed.running, Duration::from_millis(4_000));
    }

    #[test]
    fn rate_window_length_is_configurable() {
        let mut w = RateWindow::default();
        let window = Duration::from_secs(6);
        let t0 = Instant::now();
        assert_eq!(w.try_hit(1, window, t0), RateDecision::Allowed);
        assert_eq!(
            w.try_hit(1, window, t0 + Duration::from_secs(2)),
            RateDecision::Limited(4)
        );
        assert_eq!(w.try_hit(1, window, t0 + window), RateDecision::Allowed);
    }

    #[test]
    fn zero_timings_complete_at_once() {
        let config = EmulatorConfig {
            queued_ms: 0,
            running_ms: 0,
            ..EmulatorConfig::linear()
        };
        let shared = Shared::new(config.clone(), "http://x".into());
        let job = shared.create_job(request(15.0, Resolution::P1080));
        assert_eq!(job.phase(job.created), Phase::Completed);
        assert_eq!(job.cost_usd(), 2.7);
    }

    #[test]
    fn failures_come_from_fail_next_then_the_marker() {
        let shared = Shared::new(EmulatorConfig::linear(), "http://x".into());
        shared.data().fail_next = Some(JobError {
            code: "upstream_error".into(),
            message: "m".into(),
        });
        let mut marked = request(5.0, Resolution::P720);
        marked.prompt = format!("a {FAIL_MARKER} b");
        let first = shared.create_job(marked.clone());
        assert_eq!(first.failure.unwrap().code, "upstream_error");
        let second = shared.create_job(marked);
        assert_eq!(second.failure.unwrap().code, "content_policy_violation");
        assert!(
            shared
                .create_job(request(5.0, Resolution::P720))
                .failure
                .is_none()
        );
        assert_eq!(shared.data().jobs_created, 3);
        assert_eq!(shared.jobs_in_order().len(), 3);
    }

    #[test]
    fn a_scripted_job_answers_its_numbers_poll_by_poll_then_ends() {
        let shared = Shared::new(
            EmulatorConfig {
                queued_ms: 0,
                ..EmulatorConfig::linear()
            },
            "http://x".into(),
        );
        let mut scripted = request(5.0, Resolution::P720);
        scripted.prompt = "a horse [emulator:progress=0.6, 6,40] galloping".into();
        let job = shared.create_job(scripted);
        let now = Instant::now();
        let written = |job: &Job| job.script.as_ref().and_then(ProgressScript::written);
        for expected in [0.6, 6.0, 40.0] {
            let seen = shared.poll_job(&job.id, now).unwrap();
            assert!(matches!(seen.phase(now), Phase::Running(_)));
            assert_eq!(written(&seen), Some(expected));
        }
        let ended = shared.poll_job(&job.id, now).unwrap();
        assert_eq!(ended.phase(now), Phase::Completed);
        assert_eq!(ended.first_seen_ended, Some(now));
        assert_eq!(
            ended.completed_wall(),
            ended.created_wall + (now - ended.created)
        );
    }

    #[test]
    fn only_a_well_formed_script_counts() {
        let script = |p: &str| ProgressScript::in_prompt(p).map(|s| s.readings);
        assert_eq!(script("[emulator:progress=1,100]"), Some(vec![1.0, 100.0]));
        assert_eq!(script("[emulator:progress=]"), None);
        assert_eq!(script("[emulator:progress=5,x]"), None);
        assert_eq!(script("[emulator:progress=101]"), None);
        assert_eq!(script("[emulator:progress=-1]"), None);
        assert_eq!(script("[emulator:progress=NaN]"), None);
        assert_eq!(script("[emulator:progress=5"), None);
        assert_eq!(script("a horse"), None);
    }
}
