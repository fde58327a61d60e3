//! A render farm's jobs, as a client sees them: a queue whose wait depends on the load,
//! render times that grow with the clip and have a heavy tail, and progress that is not a
//! straight line — so a client that predicts when a job ends is tested against a world less
//! kind than a linear one.
//!
//! Everything random is drawn from one seeded generator in creation order, and a job's
//! progress noise is a pure function of its own seed and the time, so a run repeats exactly
//! for the same seed and the same sequence of submits.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::validation::{GenerationRequest, Resolution};

/// The farm's fixed shapes: how render times spread, how often jobs straggle and by how
/// much, how noisy progress is, and how jobs report it. Public so that a benchmark can build
/// an observer that knows the farm's true model (`bench`'s reference observer).
pub mod shape {
    use rand::Rng;
    use std::ops::Range;

    /// Render time's log-normal shape (σ of its logarithm) around the clip's median.
    pub const RENDER_SPREAD: f64 = 0.3;
    /// A straggler's render time, as a multiple of its drawn one.
    pub const STRAGGLER_FACTOR: Range<f64> = 2.0..3.0;
    /// Dispatch time's log-normal shape around [`RenderFarm::dispatch_median`](super::RenderFarm).
    pub const DISPATCH_SPREAD: f64 = 0.6;
    /// Progress noise, peak to peak (uniform, so ± half of it).
    pub const PROGRESS_NOISE: f64 = 0.06;
    /// Share of jobs that say `running` with progress 0 while still queued.
    pub const QUEUED_SAYS_RUNNING: f64 = 0.3;
    /// Shares of jobs reporting progress 0–1 and 0–100; the rest report none.
    pub const FRACTION_SHARE: f64 = 0.7;
    /// See [`FRACTION_SHARE`].
    pub const PERCENT_SHARE: f64 = 0.2;
    /// Share of jobs whose progress stays flat for a stretch of their render.
    pub const PLATEAU_SHARE: f64 = 0.25;

    /// A render time drawn as the farm draws one: log-normal around `median`, and, for a
    /// `straggler_share` of jobs, [`STRAGGLER_FACTOR`] times that.
    pub fn render_time(rng: &mut impl Rng, median: f64, straggler_share: f64) -> f64 {
        let render = median * log_normal(rng, RENDER_SPREAD);
        if rng.random_bool(straggler_share.clamp(0.0, 1.0)) {
            render * rng.random_range(STRAGGLER_FACTOR)
        } else {
            render
        }
    }

    /// A log-normal factor with median 1 and shape `sigma` (Box–Muller).
    pub fn log_normal(rng: &mut impl Rng, sigma: f64) -> f64 {
        let u1: f64 = rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = rng.random();
        let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        (sigma * normal).exp()
    }

    /// The progress curve without noise or plateau, at `t` (0–1) of the render:
    /// `6t⁵ − 15t⁴ + 10t³`, flat at both ends, steep in the middle.
    pub fn s_curve(t: f64) -> f64 {
        let t = t.clamp(0.0, 1.0);
        t * t * t * (t * (t * 6.0 - 15.0) + 10.0)
    }
}

/// How a job's timings and progress reports are made.
#[derive(Clone, Debug, PartialEq)]
pub enum JobModel {
    /// Queued for `queued_ms` (or a uniform draw from `queued_ms_range`), then running for
    /// `running_ms` (or `running_ms_range`) with progress rising linearly from 0 to 1: exact
    /// and repeatable, for tests that need to know when a job ends.
    Linear,
    /// Jobs from a [`RenderFarm`].
    RenderFarm(RenderFarm),
}

impl Default for JobModel {
    fn default() -> Self {
        JobModel::RenderFarm(RenderFarm::default())
    }
}

/// A farm of `slots` renderers behind one queue, never rendering more jobs at once than it
/// has renderers. A job is booked on a renderer when admitted, so a renderer left idle
/// before a slow-dispatching job's start is not lent to a quicker one admitted after it (a
/// little more queue than a perfect dispatcher's). The defaults are a plausible reading of a
/// hosted video model (nothing about its timing is documented): a 5 s 720p clip renders in
/// about a minute, 1080p in about 1.7, a tenth of the jobs straggle at 2–3× that.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderFarm {
    /// Seeds every draw (default 1).
    pub seed: u64,
    /// Jobs rendered at once; a job waits for a free renderer, so the queue grows with load
    /// (default 12).
    pub slots: usize,
    /// Median time from submit to a free renderer when one is free: admission, moderation,
    /// scheduling (default 6 s; log-normal, so some wait several times that).
    pub dispatch_median: Duration,
    /// Median render time per second of 720p video (default 12 s).
    pub render_per_second_720p: Duration,
    /// Median render time per second of 1080p video (default 20 s).
    pub render_per_second_1080p: Duration,
    /// Share of jobs that straggle at 2–3× their drawn render time (default 0.1).
    pub straggler_share: f64,
    /// Every duration above is multiplied by this: `0.1` runs the farm ten times faster
    /// (default 1.0).
    pub time_scale: f64,
}

impl RenderFarm {
    /// The median render time of a clip `clip_secs` long (at least 1 s), at 1080p or 720p,
    /// in seconds at real speed (before [`RenderFarm::time_scale`]).
    pub fn median_render_secs(&self, clip_secs: f64, p1080: bool) -> f64 {
        let per_second = if p1080 {
            self.render_per_second_1080p
        } else {
            self.render_per_second_720p
        };
        per_second.as_secs_f64() * clip_secs.max(1.0)
    }
}

impl Default for RenderFarm {
    fn default() -> Self {
        RenderFarm {
            seed: 1,
            slots: 12,
            dispatch_median: Duration::from_secs(6),
            render_per_second_720p: Duration::from_secs(12),
            render_per_second_1080p: Duration::from_secs(20),
            straggler_share: 0.1,
            time_scale: 1.0,
        }
    }
}

/// How a job reports its progress, fixed when it is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProgressScale {
    /// `0.0` to `1.0`, as documented.
    Fraction,
    /// `0` to `100`.
    Percent,
    /// No `progress` field at all.
    Missing,
}

/// What one farm job does besides its queue and render times.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct JobShape {
    /// While queued, the job says `running` with progress 0 instead of `queued`.
    pub queued_says_running: bool,
    /// The scale its progress is reported in.
    pub scale: ProgressScale,
    /// A stretch of the render, as fractions of its time, during which progress stays flat.
    pub plateau: Option<(f64, f64)>,
    /// Seeds the progress noise.
    pub noise_seed: u64,
}

impl JobShape {
    /// The progress reported at `fraction` of the render time: an S-curve (slow start, fast
    /// middle, slow finish), flat over the plateau, with a few percent of noise, and never
    /// 1.0 before the job ends.
    pub fn progress(&self, fraction: f64) -> f64 {
        let t = fraction.clamp(0.0, 1.0);
        let t = match self.plateau {
            // The curve stops at the plateau's start, then catches up by the end.
            Some((from, to)) if t >= from && t < to => from,
            Some((from, to)) if t >= to => from + (t - to) * (1.0 - from) / (1.0 - to).max(1e-9),
            _ => t,
        };
        let curve = shape::s_curve(t);
        // Noise from the job's seed and a 250 ms-of-render bucket: repeatable, and not
        // monotonic (a reading can go back a little).
        let bucket = (fraction * 4_000.0) as u64;
        let noise = (unit(mix(self.noise_seed ^ bucket)) - 0.5) * shape::PROGRESS_NOISE;
        (curve + noise).clamp(0.0, 0.99)
    }
}

/// SplitMix64's finaliser: a well-spread 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A number in `[0, 1)` from 64 random bits.
fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// The farm's state: its random stream and when each renderer frees up.
#[derive(Debug)]
pub(crate) struct Farm {
    config: RenderFarm,
    rng: StdRng,
    /// When each renderer that has rendered is free again, one entry per renderer (at most
    /// `slots`): a renderer is never forgotten, so no more than `slots` jobs render at once.
    free_at: Vec<Instant>,
}

/// A new farm job's timings and shape.
pub(crate) struct Admission {
    pub queued: Duration,
    pub running: Duration,
    pub shape: JobShape,
}

impl Farm {
    pub fn new(config: RenderFarm) -> Farm {
        Farm {
            rng: StdRng::seed_from_u64(config.seed),
            free_at: Vec::new(),
            config,
        }
    }

    /// Admit a job submitted at `now`: it waits for dispatch and a free renderer, then
    /// renders for a time drawn from its clip's length and resolution.
    pub fn admit(&mut self, request: &GenerationRequest, now: Instant) -> Admission {
        let c = &self.config;
        let scale = if c.time_scale.is_finite() && c.time_scale > 0.0 {
            c.time_scale
        } else {
            1.0
        };
        let median_render = c.median_render_secs(
            request.duration,
            matches!(request.resolution, Resolution::P1080),
        ) * scale;
        let render = shape::render_time(&mut self.rng, median_render, c.straggler_share);
        let dispatch = c.dispatch_median.as_secs_f64()
            * scale
            * shape::log_normal(&mut self.rng, shape::DISPATCH_SPREAD);
        let ready = now + secs(dispatch);
        let running = secs(render);
        let start = self.assign(ready, running);
        let shape = JobShape {
            queued_says_running: self.rng.random_bool(shape::QUEUED_SAYS_RUNNING),
            // Drawn in whole tenths (one draw of the seeded stream, as before the shares were
            // named); the shares are rounded to tenths.
            scale: match self.rng.random_range(0i32..10) {
                t if t < tenths(shape::FRACTION_SHARE) => ProgressScale::Fraction,
                t if t < tenths(shape::FRACTION_SHARE) + tenths(shape::PERCENT_SHARE) => {
                    ProgressScale::Percent
                }
                _ => ProgressScale::Missing,
            },
            plateau: self.rng.random_bool(shape::PLATEAU_SHARE).then(|| {
                let from: f64 = self.rng.random_range(0.3..0.8);
                (from, (from + self.rng.random_range(0.05..0.2)).min(0.95))
            }),
            noise_seed: self.rng.random(),
        };
        Admission {
            queued: start.saturating_duration_since(now),
            running,
            shape,
        }
    }

    /// Books a renderer for a job ready at `ready` that renders for `running`, and says when
    /// it starts: on a renderer never used yet, else on the one that freed up last before
    /// `ready` (leaving those free earlier to jobs admitted later but ready sooner), else on
    /// the one that frees up first, once it does.
    fn assign(&mut self, ready: Instant, running: Duration) -> Instant {
        if self.free_at.len() < self.config.slots.max(1) {
            self.free_at.push(ready + running);
            return ready;
        }
        let free_by_ready = self
            .free_at
            .iter()
            .enumerate()
            .filter(|(_, at)| **at <= ready)
            .max_by_key(|(_, at)| **at);
        let (slot, start) = match free_by_ready {
            Some((slot, _)) => (slot, ready),
            None => {
                let (slot, free) = self
                    .free_at
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, at)| **at)
                    .expect("at least one renderer");
                (slot, *free)
            }
        };
        self.free_at[slot] = start + running;
        start
    }
}

/// A share (0–1) in whole tenths.
fn tenths(share: f64) -> i32 {
    (share * 10.0).round() as i32
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::from_secs(24 * 60 * 60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::Mode;

    fn request(duration: f64, resolution: Resolution) -> GenerationRequest {
        GenerationRequest {
            prompt: "p".into(),
            mode: Mode::T2v,
            images: vec![],
            aspect_ratio: "16:9".into(),
            resolution,
            duration,
            seed: None,
            watermark: false,
        }
    }

    fn admit_many(farm: &mut Farm, n: usize, gap: Duration) -> Vec<Admission> {
        let start = Instant::now();
        (0..n)
            .map(|i| farm.admit(&request(5.0, Resolution::P720), start + gap * i as u32))
            .collect()
    }

    #[test]
    fn the_same_seed_repeats_the_same_jobs() {
        let a = admit_many(
            &mut Farm::new(RenderFarm::default()),
            20,
            Duration::from_secs(1),
        );
        let b = admit_many(
            &mut Farm::new(RenderFarm::default()),
            20,
            Duration::from_secs(1),
        );
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                (x.queued, x.running, &x.shape),
                (y.queued, y.running, &y.shape)
            );
        }
    }

    /// Drawn by the farm at `43e1b05`, before its shapes were named: queued and running ms,
    /// says `running` while queued, progress scale, has a plateau.
    const GOLDEN: &[(u128, u128, bool, ProgressScale, bool)] = &[
        (5811, 58534, false, ProgressScale::Percent, false),
        (6842, 34268, true, ProgressScale::Fraction, true),
        (5072, 33440, false, ProgressScale::Fraction, false),
        (25807, 35245, false, ProgressScale::Fraction, true),
        (7277, 69525, false, ProgressScale::Missing, false),
        (7496, 64310, true, ProgressScale::Fraction, false),
    ];

    /// The first jobs of seed 1 as the farm drew them before its shapes were named: a change
    /// to the order or kind of draws would make every published run unrepeatable. (Queue
    /// times of a full farm changed once, at `05baffd`, when it stopped running more jobs
    /// than renderers; these six fit on free renderers.)
    #[test]
    fn seed_one_draws_the_jobs_it_always_drew() {
        let jobs = admit_many(
            &mut Farm::new(RenderFarm::default()),
            6,
            Duration::from_secs(1),
        );
        let drawn: Vec<(u128, u128, bool, ProgressScale, bool)> = jobs
            .iter()
            .map(|a| {
                (
                    a.queued.as_millis(),
                    a.running.as_millis(),
                    a.shape.queued_says_running,
                    a.shape.scale,
                    a.shape.plateau.is_some(),
                )
            })
            .collect();
        assert_eq!(drawn, GOLDEN);
    }

    #[test]
    fn the_shares_are_whole_tenths() {
        for share in [shape::FRACTION_SHARE, shape::PERCENT_SHARE] {
            assert_eq!(f64::from(tenths(share)) / 10.0, share);
        }
        assert!(tenths(shape::FRACTION_SHARE) + tenths(shape::PERCENT_SHARE) <= 10);
    }

    #[test]
    fn render_time_grows_with_length_and_resolution_and_has_a_heavy_tail() {
        let mut farm = Farm::new(RenderFarm {
            slots: 10_000,
            ..RenderFarm::default()
        });
        let now = Instant::now();
        let mut median = |d: f64, r: Resolution| {
            let mut times: Vec<Duration> = (0..400)
                .map(|_| farm.admit(&request(d, r), now).running)
                .collect();
            times.sort();
            (times[200], times[396])
        };
        let (short, _) = median(3.0, Resolution::P720);
        let (long, tail) = median(15.0, Resolution::P720);
        let (sharp, _) = median(15.0, Resolution::P1080);
        assert!(long > short * 3, "{long:?} vs {short:?}");
        assert!(sharp > long, "{sharp:?} vs {long:?}");
        assert!(
            tail > long * 2,
            "the slowest 1% straggle: {tail:?} vs median {long:?}"
        );
        assert!(
            (120..240).contains(&long.as_secs()),
            "a 15 s clip: {long:?}"
        );
    }

    #[test]
    fn the_queue_grows_with_load() {
        let farm = RenderFarm {
            slots: 4,
            ..RenderFarm::default()
        };
        let light = admit_many(&mut Farm::new(farm.clone()), 4, Duration::from_secs(60));
        let heavy = admit_many(&mut Farm::new(farm), 40, Duration::ZERO);
        let worst_light = light.iter().map(|a| a.queued).max().unwrap();
        let worst_heavy = heavy.iter().map(|a| a.queued).max().unwrap();
        assert!(
            worst_heavy > worst_light * 5,
            "{worst_heavy:?} vs {worst_light:?}"
        );
        assert!(
            worst_heavy > Duration::from_secs(300),
            "40 jobs on 4 renderers wait"
        );
    }

    /// However the dispatch times fall, no more jobs render at once than there are renderers
    /// (the farm once forgot renderers freed before a slow-dispatching job was ready, and a
    /// quick one admitted after it then rendered beside all of them).
    #[test]
    fn no_more_jobs_render_at_once_than_there_are_renderers() {
        let slots = RenderFarm::default().slots;
        let start = Instant::now();
        let mut farm = Farm::new(RenderFarm::default());
        // Bursts of eight submits, about as fast as the renderers free up: dispatch times
        // then overlap with renderers freeing.
        let mut edges: Vec<(Instant, isize)> = (0..400)
            .flat_map(|i| {
                let at = start + Duration::from_secs(28) * (i / 8);
                let job = farm.admit(&request(3.0, Resolution::P720), at);
                let began = at + job.queued;
                [(began, 1), (began + job.running, -1)]
            })
            .collect();
        // Ends before starts at the same instant: a renderer freed is free.
        edges.sort();
        let (mut rendering, mut most) = (0usize, 0);
        for (at, change) in edges {
            rendering = rendering
                .checked_add_signed(change)
                .expect("an end after its start");
            assert!(rendering <= slots, "{rendering} jobs rendering at {at:?}");
            most = most.max(rendering);
        }
        assert_eq!(most, slots, "a farm that fills uses every renderer");
    }

    /// A job ready before a renderer frees up that was forgotten: the old heap dropped every
    /// renderer free by a slow job's ready time and started the next quick job at once.
    #[test]
    fn a_quick_job_after_a_slow_one_waits_for_a_renderer() {
        let mut farm = Farm::new(RenderFarm {
            slots: 2,
            ..RenderFarm::default()
        });
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(farm.assign(t0, s(100)), t0);
        assert_eq!(farm.assign(t0, s(5)), t0);
        // Ready at 200 s: takes the renderer free since 100 s (the last freed before it),
        // keeping the one free at 5 s for a job ready sooner…
        assert_eq!(farm.assign(t0 + s(200), s(10)), t0 + s(200));
        // …like this one, ready at 1 s while both still render: it starts at 5 s, not
        // beside them (the old heap had forgotten both renderers and started it at 1 s).
        assert_eq!(farm.assign(t0 + s(1), s(10)), t0 + s(5));
    }

    #[test]
    fn progress_is_an_s_curve_with_noise_that_never_reaches_one_early() {
        let shape = JobShape {
            queued_says_running: false,
            scale: ProgressScale::Fraction,
            plateau: None,
            noise_seed: 42,
        };
        let at = |t: f64| shape.progress(t);
        assert!(at(0.1) < 0.1, "slow start: {}", at(0.1));
        assert!(at(0.9) > 0.9, "slow finish: {}", at(0.9));
        assert!(at(0.6) - at(0.4) > 0.25, "fast middle");
        for i in 0..=1000 {
            let p = at(f64::from(i) / 1000.0);
            assert!((0.0..=0.99).contains(&p), "{p} at {i}");
        }
        let readings: Vec<f64> = (0..200).map(|i| at(0.3 + f64::from(i) * 1e-4)).collect();
        assert!(
            readings.windows(2).any(|w| w[1] < w[0]),
            "noise is not monotonic"
        );
    }

    #[test]
    fn a_plateau_holds_progress_flat_then_catches_up() {
        let shape = JobShape {
            queued_says_running: false,
            scale: ProgressScale::Fraction,
            plateau: Some((0.5, 0.7)),
            noise_seed: 7,
        };
        let flat = (shape.progress(0.52) - shape.progress(0.68)).abs();
        assert!(flat < 0.07, "flat within noise: {flat}");
        assert!(shape.progress(0.95) > 0.85);
    }

    #[test]
    fn absurd_settings_never_panic() {
        let mut farm = Farm::new(RenderFarm {
            slots: 0,
            time_scale: f64::NAN,
            straggler_share: 7.0,
            ..RenderFarm::default()
        });
        let now = Instant::now();
        for _ in 0..10 {
            farm.admit(&request(f64::MAX, Resolution::P1080), now);
        }
    }
}
