//! One request budget for the whole account, shared by every plugin instance.
//!
//! The provider allows a number of requests per minute per *account* (50 for HappyHorse),
//! whatever the number of keys or jobs. Each plugin polls on its own schedule, so without a
//! shared budget many jobs in flight would together exceed the limit and be answered `429`.
//! Every outgoing request therefore takes a grant here first: a plugin's request as it
//! leaves the sandbox, or, for requests the pipeline's scheduler places, the scheduler on
//! the plugin's behalf (see `OutboundPolicy::prepay`).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// The window the provider counts requests in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Count as if the window were this much longer per minute of window (one second for the
/// provider's minute), so a request granted just before a window boundary and delivered just
/// after it cannot make the provider count one too many.
const SAFETY_PER_MINUTE: Duration = Duration::from_secs(1);
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
    state: Mutex<Bucket>,
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
    /// When the grants of the last window were made, oldest first.
    recent: VecDeque<Instant>,
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
            state: Mutex::new(Bucket {
                tokens: f64::from(burst),
                refilled_at: now,
                paused_until: now,
                recent: VecDeque::new(),
            }),
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
            let granted = bucket.recent.iter().filter(|&&t| inside(t)).count();
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
            .map(|&t| t + self.span)
            .find(|&t| t > now)
    }

    /// Wait for permission to send one request.
    pub async fn acquire(&self) {
        self.acquire_with(true).await;
    }

    /// Wait for room in the window only, not for the pace: for a request a scheduler has
    /// already placed (see [`fits`](RequestBudget::fits)), which pacing would only delay.
    /// It still takes a token if one is there, so paced requests keep their pace around it.
    pub async fn acquire_unpaced(&self) {
        self.acquire_with(false).await;
    }

    async fn acquire_with(&self, paced: bool) {
        if self.per_minute == 0 {
            self.granted.fetch_add(1, Ordering::Relaxed);
            return;
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
                while bucket
                    .recent
                    .front()
                    .is_some_and(|&t| now.saturating_duration_since(t) >= self.span)
                {
                    bucket.recent.pop_front();
                }
                let window_full = bucket.recent.len() >= self.per_minute as usize;
                if now < bucket.paused_until {
                    bucket.paused_until - now
                } else if window_full {
                    // The oldest grant of the window leaves it first.
                    let oldest = bucket.recent.front().copied().unwrap_or(now);
                    (oldest + self.span).saturating_duration_since(now)
                } else if bucket.tokens >= 1.0 || !paced {
                    bucket.tokens = (bucket.tokens - 1.0).max(0.0);
                    bucket.recent.push_back(now);
                    self.granted.fetch_add(1, Ordering::Relaxed);
                    return;
                } else {
                    Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate())
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
            budget.acquire().await;
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
            budget.acquire().await;
        }
        assert_eq!(Instant::now(), start, "the first ten go at once");
        budget.acquire().await;
        assert_eq!(
            Instant::now() - start,
            WINDOW + SAFETY_PER_MINUTE,
            "the eleventh waits for the window"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_everyone() {
        let budget = RequestBudget::new(50, 5);
        budget.acquire().await;
        budget.back_off(Some(Duration::from_secs(7)));
        let before = Instant::now();
        budget.acquire().await;
        assert!(Instant::now() - before >= Duration::from_secs(7));
        assert_eq!(budget.pauses(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn fits_keeps_room_for_reserved_requests_in_every_window() {
        let budget = RequestBudget::new(3, 3);
        budget.acquire().await;
        tokio::time::advance(Duration::from_secs(40)).await;
        budget.acquire().await;
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
        budget.acquire().await;
        assert!(!budget.fits(Instant::now(), &[]));
        assert_eq!(
            budget.next_expiry(),
            Some(now - Duration::from_secs(40) + budget.span())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_window_scales_the_count_and_its_margin() {
        let budget = RequestBudget::with_window(2, 2, Duration::from_secs(6));
        assert_eq!(budget.span(), Duration::from_millis(6_100));
        let start = Instant::now();
        for _ in 0..3 {
            budget.acquire().await;
        }
        assert_eq!(Instant::now() - start, Duration::from_millis(6_100));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_means_unlimited() {
        let budget = RequestBudget::new(0, 0);
        let before = Instant::now();
        for _ in 0..1000 {
            budget.acquire().await;
        }
        assert_eq!(Instant::now(), before);
        assert_eq!(budget.granted(), 1000);
    }
}
