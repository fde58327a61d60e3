//! What one strategy achieved, measured the same way for every strategy on the emulator's
//! side (jobs, requests, detection lag, the busiest window), and the reference observer's
//! lag on the same jobs printed beside it.

use super::pipeline::Early;
use super::{Args, Jobs, TARGET_JOBS_PER_MIN, TARGET_MEDIAN_LAG_S, TARGET_P90_LAG_S};
use crate::bound::{self, Life};
use crate::stats::Samples;
use happyhorse_emulator::{Emulator, RenderFarm};
use std::fmt::Write as _;
use std::time::Duration;

/// What one strategy achieved inside the measurement window, as the emulator saw it.
pub(super) struct Outcome {
    pub(super) jobs_per_min: f64,
    pub(super) requests_per_min: f64,
    pub(super) requests_per_job: f64,
    pub(super) lag_s: Samples,
    pub(super) count_429: usize,
    /// The most API requests any one rate window held, by arrival at the server.
    pub(super) busiest_window: usize,
    /// Polls per counted job that found it unfinished: before its render began, during it.
    pub(super) early_polls: (f64, f64),
    /// The reference observer's best on the same jobs (farm model, one clip class only).
    pub(super) bound: Option<Bound>,
    /// A pipeline's scheduler counts early in its (first) run.
    pub(super) counts: Option<Early>,
    /// The same for a second run resuming the first's journal.
    pub(super) second: Option<Early>,
    /// Every job, one CSV line each, when `Args::dump_jobs` asks for them.
    pub(super) jobs_csv: Option<String>,
}

impl Outcome {
    /// Jobs first seen ended, and API requests, inside the window (emulated time).
    pub(super) fn measure(emulator: &Emulator, args: &Args) -> Outcome {
        let emulated_ms = |d: Duration| d.as_secs_f64() * 1e3 * args.scale;
        let (from, to) = (args.warmup_minutes * 60_000.0, args.minutes * 60_000.0);
        let inside = |d: Duration| (from..=to).contains(&emulated_ms(d));
        let mut lag_s = Samples::new();
        for job in emulator.job_timings() {
            if let Some(seen) = job.first_seen_ended_at.filter(|&t| inside(t)) {
                lag_s.push_value(emulated_ms(seen.saturating_sub(job.ended_at)) / 1e3);
            }
        }
        let log = emulator.requests();
        let timings = emulator.job_timings();
        let mut polls: std::collections::HashMap<&str, Vec<Duration>> = Default::default();
        for r in &log {
            if let Some(id) = r.path.strip_prefix("/v1/jobs/") {
                polls.entry(id).or_default().push(r.at);
            }
        }
        let counted: Vec<_> = timings
            .iter()
            .filter(|job| job.first_seen_ended_at.is_some_and(inside))
            .collect();
        // Every poll of a counted job, and those that found it still queued or rendering.
        let (mut all_polls, mut queued, mut rendering) = (0usize, 0usize, 0usize);
        for job in &counted {
            for &at in polls.get(job.id.as_str()).into_iter().flatten() {
                all_polls += 1;
                if at < job.started_at {
                    queued += 1;
                } else if at < job.ended_at {
                    rendering += 1;
                }
            }
        }
        // Only when asked for: one line per job the emulator made.
        let jobs_csv = args.dump_jobs.is_some().then(|| {
            let mut csv = String::from(
                "job_id,created_ms,started_ms,ended_ms,first_seen_ended_ms,polls_ms\n",
            );
            for job in &timings {
                let polls_ms: Vec<String> = polls
                    .get(job.id.as_str())
                    .into_iter()
                    .flatten()
                    .map(|&at| format!("{:.0}", emulated_ms(at)))
                    .collect();
                let _ = writeln!(
                    csv,
                    "{},{:.0},{:.0},{:.0},{:.0},{}",
                    job.id,
                    emulated_ms(job.created_at),
                    emulated_ms(job.started_at),
                    emulated_ms(job.ended_at),
                    job.first_seen_ended_at.map_or(-1.0, emulated_ms),
                    polls_ms.join(" ")
                );
            }
            csv
        });
        let per_job = |n: usize| n as f64 / counted.len().max(1) as f64;
        let lives: Vec<Life> = counted
            .iter()
            .map(|job| Life {
                created: emulated_ms(job.created_at) / 1e3,
                started: emulated_ms(job.started_at) / 1e3,
                ended: emulated_ms(job.ended_at) / 1e3,
            })
            .collect();
        let queue_waits = timings
            .iter()
            .map(|job| emulated_ms(job.started_at.saturating_sub(job.created_at)) / 1e3)
            .collect();
        let arrivals: Vec<Duration> = log
            .iter()
            .filter(|r| r.path.starts_with("/v1/"))
            .map(|r| r.at)
            .collect();
        let mut arrivals = arrivals;
        arrivals.sort();
        let requests = arrivals.iter().filter(|&&at| inside(at)).count();
        let window = Duration::from_secs_f64(60.0 / args.scale);
        let minutes = (to - from) / 60_000.0;
        Outcome {
            jobs_per_min: lag_s.len() as f64 / minutes,
            requests_per_min: requests as f64 / minutes,
            requests_per_job: requests as f64 / lag_s.len().max(1) as f64,
            lag_s,
            count_429: emulator.count_429(),
            busiest_window: busiest_window(&arrivals, window),
            early_polls: (per_job(queued), per_job(rendering)),
            bound: Bound::of(args, &lives, queue_waits, per_job(all_polls)),
            counts: None,
            second: None,
            jobs_csv,
        }
    }
}

/// The reference observer's lag on a strategy's own jobs (see [`bound`]), at the polls per job
/// the strategy spent and at what the throughput target leaves, blind and knowing each start:
/// the policy whose worse lag, against its target, is least (not the least p50 or p90 alone).
pub(super) struct Bound {
    /// The strategy's own polls per counted job.
    polls_per_job: f64,
    /// The polls per job the throughput target leaves inside the budget.
    target_polls: f64,
    /// The observer's best at most at the strategy's polls per job.
    at_own: Option<(bound::Policy, bound::Replay)>,
    /// At the polls per job the throughput target leaves inside the budget.
    at_target: Option<(bound::Policy, bound::Replay)>,
    /// The same, knowing when each render began.
    at_target_start_known: Option<(bound::Policy, bound::Replay)>,
}

impl Bound {
    /// `None` unless the jobs come from the farm, in one clip class.
    fn of(args: &Args, lives: &[Life], queue_waits: Vec<f64>, polls_per_job: f64) -> Option<Bound> {
        let ([clip], [resolution]) = (args.clip_secs.as_slice(), args.resolutions.as_slice())
        else {
            return None;
        };
        if args.jobs != Jobs::Farm || lives.is_empty() {
            return None;
        }
        let farm = RenderFarm::default();
        let model = bound::Model {
            median_render: farm.median_render_secs(f64::from(*clip), resolution == "1080p"),
            straggler_share: farm.straggler_share,
            queue_waits,
        };
        let targets = (TARGET_MEDIAN_LAG_S, TARGET_P90_LAG_S);
        let target_polls = f64::from(args.budget) / TARGET_JOBS_PER_MIN - 1.0;
        let best = |start_known, polls| bound::best(lives, &model, start_known, polls, targets);
        Some(Bound {
            polls_per_job,
            target_polls,
            at_own: best(false, polls_per_job),
            at_target: best(false, target_polls),
            at_target_start_known: best(true, target_polls),
        })
    }

    pub(super) fn describe(&self) -> String {
        let lag = |r: Option<(bound::Policy, bound::Replay)>| {
            r.map_or("no policy polls that little".into(), |(p, r)| {
                format!(
                    "{:.2} polls/job, lag p50 {:.1}s, p90 {:.1}s ({p})",
                    r.polls_per_job, r.lag_p50, r.lag_p90
                )
            })
        };
        format!(
            "reference observer on these jobs (knows the farm's model; a reference, not a bound): \
             at this strategy's \
             {:.2} polls/job: {}; at the {:.2} that {} jobs/min leaves: {}; and knowing each \
             render's start: {}",
            self.polls_per_job,
            lag(self.at_own),
            self.target_polls,
            TARGET_JOBS_PER_MIN,
            lag(self.at_target),
            lag(self.at_target_start_known),
        )
    }
}

/// The most arrivals any half-open window of length `window` holds (`arrivals` in the
/// server's order, so sorted).
fn busiest_window(arrivals: &[Duration], window: Duration) -> usize {
    let mut from = 0;
    let mut most = 0;
    for (i, &at) in arrivals.iter().enumerate() {
        while at.saturating_sub(arrivals[from]) >= window {
            from += 1;
        }
        most = most.max(i + 1 - from);
    }
    most
}
