//! One request budget for the whole account, shared by every plugin instance.
//!
//! The provider allows a number of requests per minute per *account* (50 for HappyHorse),
//! whatever the number of keys or jobs. Each plugin polls on its own schedule, so without a
//! shared budget many jobs in flight would together exceed the limit and be answered `429`.
//! Every outgoing request therefore takes a grant here first: a plugin's request as it
//! leaves the sandbox, or, for requests the pipeline's scheduler places, the scheduler on
//! the plugin's behalf (see `OutboundPolicy::prepay`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The window the provider counts requests in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Count as if the window were this much longer per minute of window. A request is counted
/// from its grant until its answer arrives (see [`Grant`]), and the provider cannot have
/// received it after answering it, so no delay between grant and arrival (a late send, a
/// slow request ahead of it on the connection) can make the provider see more than the
/// limit in a window; what is left is the two clocks' drift and the provider's timestamp
/// rounding, for which 100 ms a minute is ample (measured: `BENCHMARKS.md` §5).
const SAFETY_PER_MINUTE: Duration = Duration::from_millis(100);
/// How often a full window is looked at again while some of its grants are in flight.
const IN_FLIGHT_RECHECK: Duration = Duration::from_millis(20);
/// How long to hold everything back after a `429` that came without `Retry-After`.
const DEFAULT_PAUSE: Duration = Duration::from_secs(5);

/// No window of 60 s (plus a second's safety) ever holds more than `per_minute` grants —
/// checked exactly against a log of the last grants, so the whole limit is usable — and
/// requests are spread out by a token bucket of `burst` tokens refilled at the limit's pace,
/// so an idle host does not fire its whole minute at once.
#[derive(Debug)]
pub struct RequestBudget {
    per_minute: u32,
    burst: u32,
    /// The provider's window plus the safety margin: what the log is checked against.
    span: Duration,
    state: Arc<Mutex<Bucket>>,
    /// Waiters queue here so tokens are granted first come, first served.
    turn: tokio::sync::Mutex<()>,
    granted: AtomicU64,
    pauses: AtomicU64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
    paused_until: Instant,
    /// The grants still counted: those in flight, and those answered within a span.
    recent: Vec<Entry>,
    next_id: u64,
    /// The longest time from a grant to its answer so far: the margin a log of grant
    /// times alone would have needed.
    longest_hold: Duration,
}

/// One grant in the log.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u64,
    /// When it was granted.
    granted: Instant,
    /// When its answer came (or its request was given up); `None` while in flight, when it
    /// counts as if made at every moment (it may reach the provider at any).
    answered: Option<Instant>,
}

impl Entry {
    /// The instant it counts at, seen at `now`.
    fn at(&self, now: Instant) -> Instant {
        self.answered.unwrap_or(now.max(self.granted))
    }
}

impl Bucket {
    /// Forgets grants answered a whole span ago.
    fn expire(&mut self, now: Instant, span: Duration) {
        self.recent.retain(|e| {
            e.answered
                .is_none_or(|t| now.saturating_duration_since(t) < span)
        });
    }
}

/// A request's place in the budget, from its grant until it is answered: the one object
/// that travels from whoever takes the grant (a scheduler, or the sandbox for a request
/// nobody placed) to the wire.
///
/// Dropping it marks the request answered *now* — do so once the answer (or the failure)
/// is in — so the provider, which received it before answering, counts it in no window the
/// budget does not. A grant whose request was never sent is handed back with
/// [`give_back`](Grant::give_back), freeing its place at once.
#[derive(Debug)]
#[must_use = "a grant is counted as answered when dropped; hold it until the answer arrives"]
pub struct Grant {
    log: Option<(Arc<Mutex<Bucket>>, u64)>,
}

impl Grant {
    /// Hands the grant back unused: its request was never sent, so it takes no place.
    pub fn give_back(mut self) {
        if let Some((log, id)) = self.log.take() {
            let mut bucket = log.lock().unwrap_or_else(|e| e.into_inner());
            bucket.recent.retain(|e| e.id != id);
        }
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        if let Some((log, id)) = self.log.take() {
            let mut bucket = log.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let mut held = None;
            if let Some(entry) = bucket.recent.iter_mut().find(|e| e.id == id) {
                entry.answered = Some(now);
                held = Some(now.saturating_duration_since(entry.granted));
            }
            if let Some(held) = held {
                bucket.longest_hold = bucket.longest_hold.max(held);
            }
        }
    }
}

impl RequestBudget {
    /// A budget of `per_minute` requests (0 = unlimited) with bursts of up to `burst`.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        RequestBudget::with_window(per_minute, burst, WINDOW)
    }

    /// A budget of `per_minute` requests in every `window` (the provider's is a minute; only
    /// an emulator whose clock runs faster needs another).
    pub fn with_window(per_minute: u32, burst: u32, window: Duration) -> Self {
        let burst = burst.clamp(1, per_minute.max(1));
        let now = Instant::now();
        let window = window.max(Duration::from_millis(1));
        RequestBudget {
            per_minute,
            burst,
            span: window + SAFETY_PER_MINUTE.mul_f64(window.as_secs_f64() / 60.0),
            state: Arc::new(Mutex::new(Bucket {
                tokens: f64::from(burst),
                refilled_at: now,
                paused_until: now,
                recent: Vec::new(),
                next_id: 0,
                longest_hold: Duration::ZERO,
            })),
            turn: tokio::sync::Mutex::new(()),
            granted: AtomicU64::new(0),
            pauses: AtomicU64::new(0),
        }
    }

    /// Requests per minute (0 = unlimited).
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Largest burst.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Tokens granted so far.
    pub fn granted(&self) -> u64 {
        self.granted.load(Ordering::Relaxed)
    }

    /// How many times a `429` paused the budget.
    pub fn pauses(&self) -> u64 {
        self.pauses.load(Ordering::Relaxed)
    }

    /// The span every grant is counted in: the window plus its safety margin.
    pub fn span(&self) -> Duration {
        self.span
    }

    /// The limit's own pace: one request per window ÷ limit (1.2 s at 50 a minute), zero
    /// when unlimited.
    pub fn pace(&self) -> Duration {
        self.span
            .checked_div(self.per_minute)
            .unwrap_or(Duration::ZERO)
    }

    /// Requests counted in the window now: in flight, or answered within a span.
    pub fn used(&self) -> usize {
        let mut bucket = self.state.lock().expect("budget lock");
        bucket.expire(Instant::now(), self.span);
        bucket.recent.len()
    }

    /// The longest time any grant so far was held from grant to answer.
    pub fn longest_hold(&self) -> Duration {
        self.state.lock().expect("budget lock").longest_hold
    }

    /// Tokens per second: the limit's own pace (the window log keeps the count exact).
    fn rate(&self) -> f64 {
        f64::from(self.per_minute) / self.span.as_secs_f64()
    }

    /// Whether one more request at `now` still leaves room, in every window, for the
    /// requests already `reserved` at their planned instants (in any order; past ones count
    /// as `now`). This is how a scheduler keeps a poll it has promised from being crowded out.
    pub fn fits(&self, now: Instant, reserved: &[Instant]) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let bucket = self.state.lock().expect("budget lock");
        let limit = self.per_minute as usize;
        // Only windows that contain `now` can hold the request about to be sent: those
        // ending at each reserved instant within one span from now, and the one ending now.
        let ends = std::iter::once(now).chain(
            reserved
                .iter()
                .map(|&at| at.max(now))
                .filter(|&at| at.saturating_duration_since(now) < self.span),
        );
        for end in ends {
            let from = end.checked_sub(self.span);
            let inside = |t: Instant| from.is_none_or(|f| t > f) && t <= end;
            let granted = bucket.recent.iter().filter(|e| inside(e.at(now))).count();
            let planned = reserved.iter().filter(|&&t| inside(t.max(now))).count();
            if granted + planned + 1 > limit {
                return false;
            }
        }
        true
    }

    /// When the oldest grant still counted leaves the window: the next moment [`fits`] can
    /// change its mind other than by a reservation being dropped.
    ///
    /// [`fits`]: RequestBudget::fits
    pub fn next_expiry(&self) -> Option<Instant> {
        let bucket = self.state.lock().expect("budget lock");
        let now = Instant::now();
        bucket
            .recent
            .iter()
            .filter_map(|e| e.answered)
            .map(|t| t + self.span)
            .filter(|&t| t > now)
            .min()
    }

    /// Wait for permission to send one request; hold the grant until its answer arrives.
    pub async fn acquire(&self) -> Grant {
        self.acquire_with(true).await
    }

    /// Wait for room in the window only, not for the pace: for a request a scheduler has
    /// already placed (see [`fits`](RequestBudget::fits)), which pacing would only delay.
    /// It still takes a token if one is there, so paced requests keep their pace around it.
    pub async fn acquire_unpaced(&self) -> Grant {
        self.acquire_with(false).await
    }

    async fn acquire_with(&self, paced: bool) -> Grant {
        if self.per_minute == 0 {
            self.granted.fetch_add(1, Ordering::Relaxed);
            return Grant { log: None };
        }
        // Paced requests queue first come, first served; an unpaced one must not wait
        // behind one that is sleeping for a token.
        let _turn = if paced {
            Some(self.turn.lock().await)
        } else {
            None
        };
        loop {
            let wait = {
                let mut bucket = self.state.lock().expect("budget lock");
                let now = Instant::now();
                let elapsed = now.saturating_duration_since(bucket.refilled_at);
                bucket.tokens = (bucket.tokens + elapsed.as_secs_f64() * self.rate())
                    .min(f64::from(self.burst));
                bucket.refilled_at = now;
                bucket.expire(now, self.span);
                let window_full = bucket.recent.len() >= self.per_minute as usize;
                if now < bucket.paused_until {
                    bucket.paused_until - now
                } else if window_full {
                    // The earliest answered grant leaves the window first; grants still in
                    // flight leave only once answered, so look again soon.
                    let expiry = bucket
                        .recent
                        .iter()
                        .filter_map(|e| e.answered)
                        .min()
                        .map(|t| (t + self.span).saturating_duration_since(now));
                    let in_flight = bucket.recent.iter().any(|e| e.answered.is_none());
                    match (expiry, in_flight) {
                        (Some(expiry), false) => expiry,
                        (Some(expiry), true) => expiry.min(IN_FLIGHT_RECHECK),
                        (None, _) => IN_FLIGHT_RECHECK,
                    }
                    .max(Duration::from_millis(1))
                } else if bucket.tokens >= 1.0 || !paced {
                    bucket.tokens = (bucket.tokens - 1.0).max(0.0);
                    let id = bucket.next_id;
                    bucket.next_id += 1;
                    bucket.recent.push(Entry {
                        id,
                        granted: now,
                        answered: None,
                    });
                    self.granted.fetch_add(1, Ordering::Relaxed);
                    return Grant {
                        log: Some((self.state.clone(), id)),
                    };
                } else {
                    // At least a millisecond: a token short by a rounding error would
                    // otherwise wait for nothing, over and over (the timer's granularity).
                    Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate())
                        .max(Duration::from_millis(1))
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// The provider answered `429` anyway (another client on the account, or a stricter
    /// limit than configured): hold every request back for `retry_after` and start refilling
    /// from empty, so the whole host slows down rather than one job retrying into it.
    pub fn back_off(&self, retry_after: Option<Duration>) {
        let pause = retry_after.unwrap_or(DEFAULT_PAUSE).min(self.span);
        let mut bucket = self.state.lock().expect("budget lock");
        let until = Instant::now() + pause;
        if until > bucket.paused_until {
            bucket.paused_until = until;
        }
        bucket.tokens = 0.0;
        bucket.refilled_at = until;
        self.pauses.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_limit_in_any_window() {
        let budget = RequestBudget::new(50, 5);
        let start = Instant::now();
        let mut grants = Vec::new();
        for _ in 0..200 {
            drop(budget.acquire().await);
            grants.push(Instant::now() - start);
        }
        for (i, &t) in grants.iter().enumerate() {
            let in_window = grants[i..].iter().take_while(|&&u| u < t + WINDOW).count();
            assert!(
                in_window <= 50,
                "{in_window} grants in the window from {t:?}"
            );
        }
        // …while using all of it: after the first burst, one grant per 61 s / 50.
        let total = *grants.last().unwrap();
        let paced = budget.span().mul_f64((200.0 - 5.0) / 50.0);
        assert!(
            total <= paced + Duration::from_millis(10),
            "{total:?} > {paced:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_as_large_as_the_limit_still_respects_the_window() {
        let budget = RequestBudget::new(10, 10);
        let start = Instant::now();
        for _ in 0..10 {
            drop(budget.acquire().await);
        }
        assert_eq!(Instant::now(), start, "the first ten go at once");
        drop(budget.acquire().await);
        assert_eq!(
            Instant::now() - start,
            WINDOW + SAFETY_PER_MINUTE,
            "the eleventh waits for the window"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_everyone() {
        let budget = RequestBudget::new(50, 5);
        drop(budget.acquire().await);
        budget.back_off(Some(Duration::from_secs(7)));
        let before = Instant::now();
        drop(budget.acquire().await);
        assert!(Instant::now() - before >= Duration::from_secs(7));
        assert_eq!(budget.pauses(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn fits_keeps_room_for_reserved_requests_in_every_window() {
        let budget = RequestBudget::new(3, 3);
        drop(budget.acquire().await);
        tokio::time::advance(Duration::from_secs(40)).await;
        drop(budget.acquire().await);
        let now = Instant::now();
        // Two granted (40 s and 0 s ago), limit 3: one slot is free now…
        assert!(budget.fits(now, &[]));
        // …unless a request reserved in 5 s needs it (both grants still count then)…
        assert!(!budget.fits(now, &[now + Duration::from_secs(5)]));
        // …but one reserved in 25 s finds the older grant gone (61 s after it).
        assert!(budget.fits(now, &[now + Duration::from_secs(25)]));
        // A reservation a whole window away shares no window with a request now.
        assert!(budget.fits(now, &[now + Duration::from_secs(62)]));
        // Full now: nothing fits until the oldest grant leaves, which `next_expiry` tells.
        drop(budget.acquire().await);
        assert!(!budget.fits(Instant::now(), &[]));
        assert_eq!(
            budget.next_expiry(),
            Some(now - Duration::from_secs(40) + budget.span())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_window_scales_the_count_and_its_margin() {
        let budget = RequestBudget::with_window(2, 2, Duration::from_secs(6));
        assert_eq!(budget.span(), Duration::from_millis(6_010));
        let start = Instant::now();
        for _ in 0..3 {
            drop(budget.acquire().await);
        }
        assert_eq!(Instant::now() - start, Duration::from_millis(6_010));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_means_unlimited() {
        let budget = RequestBudget::new(0, 0);
        let before = Instant::now();
        for _ in 0..1000 {
            drop(budget.acquire().await);
        }
        assert_eq!(Instant::now(), before);
        assert_eq!(budget.granted(), 1000);
        assert_eq!(budget.pace(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_counts_from_its_grant_until_a_window_after_its_answer() {
        let budget = RequestBudget::new(1, 1);
        let start = Instant::now();
        let slow = budget.acquire().await;
        // Still in flight two minutes on: no grant while it may yet reach the provider.
        let waiting = tokio::time::timeout(Duration::from_secs(120), budget.acquire()).await;
        assert!(waiting.is_err());
        // Answered at 120 s: the provider got it at 120 s at the latest, so the next one
        // goes a window after that, not after the grant.
        drop(slow);
        let answered = Instant::now();
        assert_eq!(answered - start, Duration::from_secs(120));
        drop(budget.acquire().await);
        assert_eq!(Instant::now() - answered, budget.span());
        assert_eq!(budget.longest_hold(), Duration::from_secs(120));
    }

    #[tokio::test(start_paused = true)]
    async fn a_grant_handed_back_unused_takes_no_place() {
        let budget = RequestBudget::new(1, 1);
        let start = Instant::now();
        budget.acquire_unpaced().await.give_back();
        drop(budget.acquire_unpaced().await);
        assert_eq!(Instant::now(), start, "the place was free again at once");
        assert_eq!(budget.granted(), 2);
    }

    /// Requests that reach the provider late after their grant (a slow one ahead on the
    /// connection, a late send) and are answered later still: by arrival, no window of
    /// the provider's holds more than the limit.
    #[tokio::test(start_paused = true)]
    async fn by_arrival_at_the_provider_no_window_holds_more_than_the_limit() {
        let budget = std::sync::Arc::new(RequestBudget::new(10, 3));
        let start = Instant::now();
        let arrivals = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut workers = Vec::new();
        for worker in 0..8u64 {
            let (budget, arrivals) = (budget.clone(), arrivals.clone());
            workers.push(tokio::spawn(async move {
                let mut state = worker.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                let mut next = || {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state % 5_000
                };
                for _ in 0..20 {
                    let grant = if next() % 2 == 0 {
                        budget.acquire().await
                    } else {
                        budget.acquire_unpaced().await
                    };
                    // Up to 5 s from grant to arrival, up to 5 s more to the answer.
                    tokio::time::sleep(Duration::from_millis(next())).await;
                    arrivals.lock().unwrap().push(Instant::now() - start);
                    tokio::time::sleep(Duration::from_millis(next())).await;
                    drop(grant);
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
        let mut arrivals = arrivals.lock().unwrap().clone();
        arrivals.sort();
        assert_eq!(arrivals.len(), 160);
        for (i, &t) in arrivals.iter().enumerate() {
            let in_window = arrivals[i..]
                .iter()
                .take_while(|&&u| u < t + WINDOW)
                .count();
            assert!(
                in_window <= 10,
                "{in_window} arrivals in the window from {t:?}"
            );
        }
    }
}
