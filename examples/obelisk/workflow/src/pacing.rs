//! How a batch keeps a whole cluster inside the account's request budget: pure arithmetic,
//! tested natively.
//!
//! Obelisk has no rate limiter, and its concurrency limits are per node, so the budget cannot be
//! left to the engine. The batch owns it instead. It runs its shots in `slots` (at most
//! `max-in-flight`), each slot a chain of shots one after another, and gives every slot an equal
//! share of `requests-per-minute`. Within a slot, two requests are never closer than
//! `spacing_ms`: a shot sleeps `spacing_ms` between the end of one call and the start of the
//! next, and a shot that takes over a slot sleeps `spacing_ms` before its first request. A
//! request reaches the server while its call runs, so consecutive requests of a slot arrive at
//! least `spacing_ms` apart whatever the network, the engine's queues or a node's crash do
//! (a call cut short by a crash only pushes the next one later). `spacing_ms` is chosen so that
//! a 60 s window holds at most `requests-per-minute / slots` of a slot's requests, hence at
//! most `requests-per-minute` of the batch's.
//!
//! What this does not cover: another batch, or anything else using the same key at the same
//! time (the budget is the account's: split `requests-per-minute` between them), and clocks of
//! different machines running apart (durable sleeps are timed by the node that wakes them: the
//! margin below absorbs a second of skew).

/// The window the provider counts its limit over.
pub const WINDOW_MS: u64 = 60_000;

/// Added to every spacing: timer granularity and a second of clock skew between nodes.
pub const MARGIN_MS: u64 = 1_000;

/// How often a shot may submit while the provider provably refuses (`429`, `503`, no
/// connection).
pub const MAX_SUBMIT_ATTEMPTS: u32 = 4;

/// The provider's limit per account. A batch may not claim more: anything above is a `429`
/// waiting to happen.
pub const ACCOUNT_LIMIT_PER_MINUTE: u32 = 50;

/// The least spacing any shot runs with, even called directly: the whole account's budget on
/// one slot.
pub const MIN_SPACING_MS: u64 = WINDOW_MS / ACCOUNT_LIMIT_PER_MINUTE as u64 + 1;

/// How one shot spaces its requests (the `shot.run` parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShotPacing {
    /// Sleep before the first request.
    pub first_delay_ms: u64,
    /// Least time between the end of one call and the start of the next.
    pub spacing_ms: u64,
    /// Submits allowed while the provider provably refuses.
    pub max_submit_attempts: u32,
}

/// How a batch runs its shots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPacing {
    /// Shots in flight at once.
    pub slots: u32,
    /// Least time between two requests of one slot.
    pub spacing_ms: u64,
}

impl ShotPacing {
    /// Within the floor every shot keeps: at least [`MIN_SPACING_MS`] apart (and as long
    /// before the first request), at most [`MAX_SUBMIT_ATTEMPTS`] submits.
    pub fn bounded(self) -> ShotPacing {
        ShotPacing {
            first_delay_ms: self.first_delay_ms.max(MIN_SPACING_MS),
            spacing_ms: self.spacing_ms.max(MIN_SPACING_MS),
            max_submit_attempts: self.max_submit_attempts.clamp(1, MAX_SUBMIT_ATTEMPTS),
        }
    }
}

impl BatchPacing {
    /// The pacing of every shot. Even a slot's first shot waits a spacing before its first
    /// request: whatever used the key just before (the previous batch, run by a script the
    /// moment this one's predecessor returned) may have spent its slot's share in the last
    /// minute.
    pub fn shot(&self) -> ShotPacing {
        ShotPacing {
            first_delay_ms: self.spacing_ms,
            spacing_ms: self.spacing_ms,
            max_submit_attempts: MAX_SUBMIT_ATTEMPTS,
        }
    }
}

/// The pacing for `shots` shots under `max_in_flight` and `requests_per_minute`, or why those
/// limits cannot work.
pub fn plan(
    shots: usize,
    max_in_flight: u32,
    requests_per_minute: u32,
) -> Result<BatchPacing, String> {
    if max_in_flight == 0 {
        return Err("max-in-flight must be at least 1".into());
    }
    if requests_per_minute > ACCOUNT_LIMIT_PER_MINUTE {
        return Err(format!(
            "requests-per-minute ({requests_per_minute}) is over the provider's limit of \
             {ACCOUNT_LIMIT_PER_MINUTE} per account: the excess would be refused with 429"
        ));
    }
    if requests_per_minute < max_in_flight {
        return Err(format!(
            "requests-per-minute ({requests_per_minute}) must be at least max-in-flight \
             ({max_in_flight}): every shot in flight needs at least one request a minute"
        ));
    }
    let shots = u32::try_from(shots).unwrap_or(u32::MAX).max(1);
    let slots = max_in_flight.min(shots);
    let per_slot = u64::from(requests_per_minute / slots);
    // A slot's requests at least `s` apart put at most floor(WINDOW / s) + 1 of them in any
    // (closed) window; that is at most `per_slot` once s > WINDOW / per_slot.
    let spacing_ms = WINDOW_MS / per_slot + 1 + MARGIN_MS;
    Ok(BatchPacing { slots, spacing_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most requests a sequence at least `spacing_ms` apart puts in one closed window of
    /// `window_ms`.
    fn most_in_window(spacing_ms: u64, window_ms: u64) -> u64 {
        window_ms / spacing_ms.max(1) + 1
    }

    #[test]
    fn a_batch_never_plans_more_than_its_budget_in_a_window() {
        for rpm in 1..=ACCOUNT_LIMIT_PER_MINUTE {
            for in_flight in 1..=rpm {
                for shots in [1usize, 2, 3, 7, 30, 1000] {
                    let pacing = plan(shots, in_flight, rpm).unwrap();
                    // Every slot's requests may arrive up to MARGIN_MS early (a node's clock
                    // running ahead): still within the budget.
                    let slot = most_in_window(pacing.spacing_ms - MARGIN_MS, WINDOW_MS);
                    assert!(
                        u64::from(pacing.slots) * slot <= u64::from(rpm),
                        "rpm {rpm}, in flight {in_flight}, shots {shots}: {pacing:?} allows {slot} per slot"
                    );
                }
            }
        }
    }

    #[test]
    fn the_defaults_the_readme_uses() {
        // 45 requests a minute, 9 shots at once: each slot 5 a minute, 13 s apart.
        let pacing = plan(30, 9, 45).unwrap();
        assert_eq!(
            pacing,
            BatchPacing {
                slots: 9,
                spacing_ms: 13_001
            }
        );
        assert_eq!(most_in_window(pacing.spacing_ms, WINDOW_MS), 5);
        // Fewer shots than slots: the budget is shared by the shots that exist.
        assert_eq!(plan(3, 9, 45).unwrap().slots, 3);
    }

    #[test]
    fn impossible_limits_are_refused() {
        assert!(plan(3, 0, 45).unwrap_err().contains("max-in-flight"));
        assert!(plan(3, 10, 5).unwrap_err().contains("requests-per-minute"));
        assert!(plan(3, 9, 51).unwrap_err().contains("limit of 50"));
    }

    #[test]
    fn a_shot_called_directly_keeps_the_floor() {
        let wild = ShotPacing {
            first_delay_ms: 0,
            spacing_ms: 0,
            max_submit_attempts: u32::MAX,
        };
        assert_eq!(
            wild.bounded(),
            ShotPacing {
                first_delay_ms: MIN_SPACING_MS,
                spacing_ms: MIN_SPACING_MS,
                max_submit_attempts: MAX_SUBMIT_ATTEMPTS,
            }
        );
        assert_eq!(most_in_window(MIN_SPACING_MS, WINDOW_MS), 50);
    }

    #[test]
    fn spaced_requests_of_every_slot_fit_the_budget_at_the_server() {
        // Arrival times: each slot's calls take a varying time, each request lands anywhere
        // inside its call, calls of a slot are `spacing` apart end-to-start (a new shot takes
        // over with a first delay). Count the busiest 60 s window across all slots.
        let pacing = plan(30, 9, 45).unwrap();
        let mut arrivals = Vec::new();
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        for _slot in 0..pacing.slots {
            let mut t = 0u64;
            while t < 20 * WINDOW_MS {
                let call = next() % 3_000;
                arrivals.push(t + next() % (call + 1));
                t += call + pacing.spacing_ms;
            }
        }
        arrivals.sort_unstable();
        let busiest = arrivals
            .iter()
            .enumerate()
            .map(|(i, &start)| {
                arrivals[i..]
                    .iter()
                    .take_while(|&&a| a <= start + WINDOW_MS)
                    .count()
            })
            .max()
            .unwrap();
        assert!(busiest <= 45, "{busiest} requests in one window");
    }
}
