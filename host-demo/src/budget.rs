//! One request budget for the whole account, shared by every plugin instance.
//!
//! The provider allows a number of requests per minute per *account* (50 for HappyHorse),
//! whatever the number of keys or jobs. Each plugin polls on its own schedule, so without a
//! shared budget many jobs in flight would together exceed the limit and be answered `429`.
//! Every outgoing request therefore waits for a token here first.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// The window the provider counts requests in.
const WINDOW: Duration = Duration::from_secs(60);
/// Refill as if the window were this much longer, so a request granted just before a window
/// boundary and delivered just after it cannot make the provider count one too many.
const SAFETY: Duration = Duration::from_secs(1);
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
        let burst = burst.clamp(1, per_minute.max(1));
        let now = Instant::now();
        RequestBudget {
            per_minute,
            burst,
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

    /// Tokens per second: the limit's own pace (the window log keeps the count exact).
    fn rate(&self) -> f64 {
        f64::from(self.per_minute) / (WINDOW + SAFETY).as_secs_f64()
    }

    /// Wait for permission to send one request.
    pub async fn acquire(&self) {
        if self.per_minute == 0 {
            self.granted.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let _turn = self.turn.lock().await;
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
                    .is_some_and(|&t| now.saturating_duration_since(t) >= WINDOW + SAFETY)
                {
                    bucket.recent.pop_front();
                }
                let window_full = bucket.recent.len() >= self.per_minute as usize;
                if now < bucket.paused_until {
                    bucket.paused_until - now
                } else if window_full {
                    // The oldest grant of the window leaves it first.
                    let oldest = bucket.recent.front().copied().unwrap_or(now);
                    (oldest + WINDOW + SAFETY).saturating_duration_since(now)
                } else if bucket.tokens >= 1.0 {
                    bucket.tokens -= 1.0;
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
        let pause = retry_after.unwrap_or(DEFAULT_PAUSE).min(WINDOW);
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
        let paced = (WINDOW + SAFETY).mul_f64((200.0 - 5.0) / 50.0);
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
            WINDOW + SAFETY,
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
