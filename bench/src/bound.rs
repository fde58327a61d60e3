//! The reference observer printed beside each polling-economy figure: the detection lag a
//! poller that knew the farm's model reaches, with a given number of polls per job, on the
//! very jobs a strategy ran.
//!
//! A scheduler learns the farm from what its own polls read. This observer is handed the
//! farm's true model instead — render times' spread and stragglers, the S-curve and its
//! noise (`happyhorse_emulator::farm_shape`) — and replays each counted job: it keeps a
//! weighted sample of the job's possible (queue wait, render time) pairs, polls where the
//! job's end is at a given quantile of what it still believes (or at the scheduler's own
//! rule: early edge plus an allowance), weighs the sample by what the farm reports there,
//! and plans again. The best of the policies swept, at a number of polls per job, is printed.
//!
//! It is a **reference, not a proof**: the gap between it and a scheduler is what knowing the
//! farm is worth, not the least lag possible. It knows more than any client: the farm's
//! shapes; the distribution of the run's queue waits (a client only infers it); whether each
//! job reports progress and whether it says `running` while queued; its readings never
//! plateau or come in the wrong scale; no poll waits for the budget. It also does less than
//! it might: its policies are a fixed family (135), the same for every job, and it weighs a
//! reading by a Gaussian of the noise's width rather than the farm's uniform noise (a few
//! thousand pairs must never all be ruled out). The same sweep with each render's start known
//! shows what that one fact, which the documented job object does not carry, would be worth.

use crate::stats::Samples;
use happyhorse_emulator::farm_shape as shape;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Possible (queue wait, render time) pairs the observer weighs per job.
const PARTICLES: usize = 2_000;
/// The shortest gap between two polls of a job, seconds (the scheduler's own `min_gap`).
const MIN_GAP_S: f64 = 1.0;
/// Polls after which a job is given up on (never reached on a sane farm; keeps a replay finite).
const MAX_POLLS: usize = 200;
/// How far a reading may sit from the curve, as the noise's standard deviation (uniform noise
/// of width w has σ = w/√12), widened a little so one reading cannot rule out every pair.
const READING_SIGMA_SHARE: f64 = 0.35;

/// One job's life, in seconds on one clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Life {
    /// Submitted.
    pub created: f64,
    /// Left the queue and began to render.
    pub started: f64,
    /// Ended.
    pub ended: f64,
}

/// What the observer knows of the farm besides its shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The clip's median render time, seconds.
    pub median_render: f64,
    /// Share of jobs that straggle.
    pub straggler_share: f64,
    /// Queue waits of every job in the run (counted or not), seconds: a job whose start is
    /// unknown draws its own from them. (Drawing from the jobs that had ended just before it
    /// instead did worse on the farm, p90 24–27 s against 9.5–11 s at 2.1 polls per job, ×10:
    /// they waited a job's length earlier, and the queue had moved on.)
    pub queue_waits: Vec<f64>,
}

/// Where the observer places one poll, from what it believes of the job's end then.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Place {
    /// At this quantile of the end.
    Quantile(f64),
    /// At the early edge (the end's 10th percentile) plus this many seconds, or at the late
    /// edge (its 90th) if that comes first: the learning scheduler's own rule.
    EarlyEdgePlus(f64),
}

/// Where the observer polls: its first, second and later polls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// The first poll (nothing read yet).
    pub first: Place,
    /// The second.
    pub second: Place,
    /// Every later one.
    pub later: Place,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Quantile(q) => write!(f, "q{:.0}", q * 100.0),
            Place::EarlyEdgePlus(s) => write!(f, "edge+{s}s"),
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, {}, {}", self.first, self.second, self.later)
    }
}

/// How a replay went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Replay {
    /// Polls per job, the one that found it ended included.
    pub polls_per_job: f64,
    /// Median detection lag, seconds.
    pub lag_p50: f64,
    /// 90th percentile of it.
    pub lag_p90: f64,
}

/// The policies swept: quantiles throughout (first poll early to late, then the median and
/// later); the scheduler's rule throughout, by allowance; and a quantile first, the
/// scheduler's rule after.
fn policies() -> Vec<Policy> {
    const FIRST: [f64; 6] = [0.2, 0.25, 0.3, 0.35, 0.4, 0.45];
    const SECOND: [f64; 4] = [0.4, 0.5, 0.6, 0.7];
    const LATER: [f64; 3] = [0.5, 0.7, 0.85];
    const ALLOWANCE_S: [f64; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0];
    let mut all = Vec::new();
    for first in FIRST {
        for second in SECOND {
            for later in LATER {
                all.push(Policy {
                    first: Place::Quantile(first),
                    second: Place::Quantile(second),
                    later: Place::Quantile(later),
                });
            }
        }
    }
    for allowance in ALLOWANCE_S {
        let edge = Place::EarlyEdgePlus(allowance);
        all.push(Policy {
            first: edge,
            second: edge,
            later: edge,
        });
        for first in FIRST {
            all.push(Policy {
                first: Place::Quantile(first),
                second: edge,
                later: edge,
            });
        }
    }
    all
}

/// The best replay with at most `max_polls_per_job`: the one whose worse lag, measured
/// against `targets` (p50, p90), is least. `None` if no policy polls that little.
pub fn best(
    jobs: &[Life],
    model: &Model,
    start_known: bool,
    max_polls_per_job: f64,
    targets: (f64, f64),
) -> Option<(Policy, Replay)> {
    let prepared = prepare(jobs, model, start_known);
    policies()
        .into_iter()
        .map(|policy| (policy, replay(&prepared, policy)))
        .filter(|(_, r)| r.polls_per_job <= max_polls_per_job)
        .min_by(|(_, a), (_, b)| worse(a, targets).total_cmp(&worse(b, targets)))
}

/// How far a replay is from `targets` (p50, p90): the larger of its two lags over their
/// target, so below 1 meets both; a lag that is not a number counts as infinitely far.
fn worse(replay: &Replay, targets: (f64, f64)) -> f64 {
    let share = |lag: f64, target: f64| {
        let share = lag / target;
        if share.is_nan() { f64::INFINITY } else { share }
    };
    share(replay.lag_p50, targets.0).max(share(replay.lag_p90, targets.1))
}

/// A job ready to replay: its life, what it reports, and its weighed pairs sorted by end.
struct Prepared {
    life: Life,
    /// Reports no progress at all.
    silent: bool,
    /// Says `running` with progress 0 while queued.
    queued_says_running: bool,
    /// Each pair's queue wait and render time, sorted by their sum (its end, as an age).
    pairs: Vec<(f64, f64)>,
    /// Noise of the reading at each poll (the same for every policy: common random numbers).
    noise: Vec<f64>,
    /// The job's true render time.
    render: f64,
}

fn prepare(jobs: &[Life], model: &Model, start_known: bool) -> Vec<Prepared> {
    jobs.iter()
        .enumerate()
        .map(|(i, &life)| {
            let mut rng = StdRng::seed_from_u64(0x5eed ^ i as u64);
            let true_queue = (life.started - life.created).max(0.0);
            let mut pairs: Vec<(f64, f64)> = (0..PARTICLES)
                .map(|_| {
                    let waits = &model.queue_waits;
                    let queue = if start_known || waits.is_empty() {
                        true_queue
                    } else {
                        let drawn = waits[rng.random_range(0..waits.len())];
                        (drawn + rng.random_range(-0.5..0.5)).max(0.0)
                    };
                    let render =
                        shape::render_time(&mut rng, model.median_render, model.straggler_share);
                    (queue, render)
                })
                .collect();
            pairs.sort_by(|a, b| (a.0 + a.1).total_cmp(&(b.0 + b.1)));
            let half = shape::PROGRESS_NOISE / 2.0;
            Prepared {
                life,
                silent: rng.random::<f64>() >= shape::FRACTION_SHARE + shape::PERCENT_SHARE,
                queued_says_running: rng.random_bool(shape::QUEUED_SAYS_RUNNING),
                pairs,
                noise: (0..MAX_POLLS)
                    .map(|_| rng.random_range(-half..half))
                    .collect(),
                render: (life.ended - life.started).max(f64::MIN_POSITIVE),
            }
        })
        .collect()
}

/// Replays every job under `policy`.
fn replay(jobs: &[Prepared], policy: Policy) -> Replay {
    // The same order statistics as the strategies' own figures.
    let mut lags = Samples::new();
    let mut polls = 0usize;
    for job in jobs {
        let (n, lag) = replay_one(job, policy);
        polls += n;
        lags.push_value(lag);
    }
    let empty = lags.len() == 0;
    Replay {
        polls_per_job: polls as f64 / jobs.len().max(1) as f64,
        lag_p50: if empty { f64::NAN } else { lags.median() },
        lag_p90: if empty { f64::NAN } else { lags.quantile(0.9) },
    }
}

/// One job under `policy`: how many polls it took and the lag of the one that found it ended.
fn replay_one(job: &Prepared, policy: Policy) -> (usize, f64) {
    let life = job.life;
    let mut weight = vec![1.0f64; job.pairs.len()];
    // Ages (seconds since the job was created).
    let mut now = 0.0f64;
    let end_age = life.ended - life.created;
    for n in 0..MAX_POLLS {
        let place = match n {
            0 => policy.first,
            1 => policy.second,
            _ => policy.later,
        };
        let alive: f64 = job
            .pairs
            .iter()
            .zip(&weight)
            .filter(|((q, r), _)| q + r > now)
            .map(|(_, w)| w)
            .sum();
        // The end's `level` quantile among the pairs still possible (sorted by end).
        let end_at = |level: f64| {
            let mut sum = 0.0;
            job.pairs
                .iter()
                .zip(&weight)
                .filter(|((q, r), _)| q + r > now)
                .find(|(_, w)| {
                    sum += *w;
                    sum >= level * alive
                })
                .map_or(now, |((q, r), _)| q + r)
        };
        let planned = if alive > 0.0 {
            match place {
                Place::Quantile(level) => end_at(level),
                Place::EarlyEdgePlus(allowance) => (end_at(0.1) + allowance).min(end_at(0.9)),
            }
        } else {
            // Older than anything it believed possible: look again after a tenth of its age.
            now + now * 0.1
        };
        let t = planned.max(now + MIN_GAP_S);
        if t >= end_age {
            return (n + 1, t - end_age);
        }
        observe(job, t, n, &mut weight);
        now = t;
    }
    (MAX_POLLS, f64::NAN)
}

/// Weighs each of `job`'s pairs by what a poll at age `t` (its `n`th) finds: the job not yet
/// ended; `queued`, or `running` with a reading, as the farm reports it.
fn observe(job: &Prepared, t: f64, n: usize, weight: &mut [f64]) {
    let life = job.life;
    let start_age = life.started - life.created;
    let queued = t < start_age;
    let reading = if queued {
        // Progress 0 from a job that says `running` while queued; nothing from one that says
        // `queued`, or from one that reports no progress.
        (job.queued_says_running && !job.silent).then_some(0.0)
    } else if job.silent {
        None
    } else {
        let noise = job.noise.get(n).copied().unwrap_or(0.0);
        Some((shape::s_curve((t - start_age) / job.render) + noise).clamp(0.0, 0.99))
    };
    let sigma = shape::PROGRESS_NOISE * READING_SIGMA_SHARE;
    for ((q, r), w) in job.pairs.iter().zip(weight.iter_mut()) {
        let (q, r) = (*q, *r);
        // Not ended; and for a job whose status tells (it never says `running` while queued),
        // queued exactly when the pair has it still waiting.
        let status_agrees = job.queued_says_running || (t < q) == queued;
        if q + r <= t || !status_agrees {
            *w = 0.0;
        } else if let Some(p) = reading {
            let expected = if t < q {
                0.0
            } else {
                shape::s_curve((t - q) / r)
            };
            let d = (expected - p) / sigma;
            *w *= (-0.5 * d * d).exp();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGETS: (f64, f64) = (5.0, 15.0);

    fn farm_jobs(n: usize, queue: impl Fn(usize) -> f64) -> (Vec<Life>, Model) {
        let mut rng = StdRng::seed_from_u64(3);
        let jobs: Vec<Life> = (0..n)
            .map(|i| {
                let created = i as f64 * 4.0;
                let started = created + queue(i);
                let render = 36.0 * shape::log_normal(&mut rng, shape::RENDER_SPREAD);
                Life {
                    created,
                    started,
                    ended: started + render,
                }
            })
            .collect();
        let model = Model {
            median_render: 36.0,
            straggler_share: 0.0,
            queue_waits: jobs.iter().map(|l| l.started - l.created).collect(),
        };
        (jobs, model)
    }

    #[test]
    fn knowing_the_start_helps_and_more_polls_buy_less_lag() {
        let (jobs, model) = farm_jobs(60, |i| [2.0, 10.0, 25.0, 45.0][i % 4]);
        let (_, blind) = best(&jobs, &model, false, 2.2, TARGETS).expect("a policy fits");
        let (_, known) = best(&jobs, &model, true, 2.2, TARGETS).expect("a policy fits");
        assert!(
            worse(&known, TARGETS) < worse(&blind, TARGETS),
            "{known:?} vs {blind:?}: the start is worth something"
        );
        let (_, more) = best(&jobs, &model, false, 3.5, TARGETS).expect("a policy fits");
        assert!(
            worse(&more, TARGETS) <= worse(&blind, TARGETS),
            "{more:?} vs {blind:?}"
        );
        assert!((1.0..=2.2).contains(&blind.polls_per_job), "{blind:?}");
    }

    /// A job queued 10 s, then rendering 36 s, weighing `pairs`.
    fn one_job(queued_says_running: bool, silent: bool, pairs: Vec<(f64, f64)>) -> Prepared {
        Prepared {
            life: Life {
                created: 0.0,
                started: 10.0,
                ended: 46.0,
            },
            silent,
            queued_says_running,
            pairs,
            noise: vec![0.0; 4],
            render: 36.0,
        }
    }

    fn weights(job: &Prepared, t: f64) -> Vec<f64> {
        let mut w = vec![1.0; job.pairs.len()];
        observe(job, t, 0, &mut w);
        w
    }

    #[test]
    fn what_a_poll_finds_rules_out_what_contradicts_it() {
        // At 5 s: a pair still waiting, one rendering, one already ended.
        let at_5 = vec![(20.0, 30.0), (0.0, 40.0), (0.0, 4.0)];
        // `queued`: only the pair still waiting survives.
        let w = weights(&one_job(false, false, at_5.clone()), 5.0);
        assert!(w[0] > 0.0 && w[1] == 0.0 && w[2] == 0.0, "{w:?}");
        // `running` with progress 0 from a job that says so while queued: its status tells
        // nothing, the reading fits the pair still waiting, the ended one is out.
        let w = weights(&one_job(true, false, at_5), 5.0);
        assert!(w[0] > 0.5 && w[2] == 0.0, "{w:?}");
        // At 30 s (20 s into the render): a pair not yet started, the true one, one ended.
        let at_30 = vec![(35.0, 30.0), (10.0, 36.0), (0.0, 25.0)];
        // `running`: the pair not yet started is ruled out by the status alone, even for a
        // job that reports no progress.
        for silent in [false, true] {
            let w = weights(&one_job(false, silent, at_30.clone()), 30.0);
            assert!(w[0] == 0.0 && w[1] > 0.5 && w[2] == 0.0, "{w:?}");
        }
        // A reading weighs the pair whose curve it fits far above one it does not fit.
        let w = weights(
            &one_job(false, false, vec![(10.0, 36.0), (0.0, 120.0)]),
            30.0,
        );
        assert!(w[0] > 1e6 * w[1], "{w:?}");
    }

    #[test]
    fn a_replay_that_never_ends_counts_as_infinitely_far() {
        let endless = Replay {
            polls_per_job: 3.0,
            lag_p50: f64::NAN,
            lag_p90: 1.0,
        };
        assert_eq!(worse(&endless, TARGETS), f64::INFINITY);
    }

    #[test]
    fn absurd_lives_never_panic() {
        let jobs = [
            Life {
                created: 0.0,
                started: -5.0,
                ended: -10.0,
            },
            Life {
                created: 0.0,
                started: 0.0,
                ended: 0.0,
            },
            Life {
                created: 0.0,
                started: f64::NAN,
                ended: 1e9,
            },
        ];
        let model = Model {
            median_render: 0.0,
            straggler_share: 7.0,
            queue_waits: vec![f64::NAN, -1.0],
        };
        let _ = best(&jobs, &model, false, 10.0, TARGETS);
        let _ = best(&[], &model, true, 10.0, TARGETS);
    }
}
