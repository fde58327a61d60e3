//! The scheduler against explicit times: the plan's decisions, the turns, the learner's use.

use super::config::*;
use super::learn::*;
use super::plan::*;
use super::predict::*;
use super::*;
use happyhorse_sandbox::api::{JobState, JobStatus};
use std::time::{SystemTime, UNIX_EPOCH};

const SEC: Duration = Duration::from_secs(1);

/// The wall clock the tests' provider stamps are relative to.
fn wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// A provider stamp `ago` before [`wall`].
fn stamp(ago: Duration) -> String {
    let t = wall() - ago;
    format!("{:.3}", t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64())
}

fn status(state: JobState, created_ago: Duration) -> JobStatus {
    JobStatus {
        job_id: "job".into(),
        state,
        progress_reading: None,
        raw_status: "running".into(),
        created_at: Some(stamp(created_ago)),
        completed_at: None,
        next_poll_ms: 7_000,
    }
}

/// `plan` learns that `job`, created at `t0`, was found in `state` at `age`, answered at
/// once (the provider's clock and ours agree).
fn found_at(plan: &mut PollPlan, job: &str, t0: Instant, state: JobState, age: Duration) {
    plan.observed(job, &status(state, age), t0 + age, t0 + age, wall());
}

fn budget(per_minute: u32) -> RequestBudget {
    RequestBudget::new(per_minute, per_minute.max(1))
}

#[tokio::test(start_paused = true)]
async fn a_new_job_is_probed_once_it_has_had_time_and_later_as_short_jobs_allow() {
    let mut plan = PollPlan::new(ScheduleConfig::default());
    let t0 = Instant::now();
    plan.submitted("a", t0, t0 + SEC);
    assert_eq!(plan.watches["a"].next, t0 + SEC + 10 * SEC);
    assert_eq!(plan.watches["a"].purpose, Purpose::Probe);
    // Three finished jobs, the shortest 40 s: probe at 90 % of that.
    for total in [40.0, 60.0, 90.0] {
        Learned::push(&mut plan.learned.total, total * 1e3);
    }
    plan.submitted("b", t0, t0);
    assert_eq!(plan.watches["b"].next, t0 + Duration::from_secs(36));
    // However short they were, not before the configured floor.
    Learned::push(&mut plan.learned.total, 100.0);
    plan.submitted("c", t0, t0);
    assert_eq!(plan.watches["c"].next, t0 + 2 * SEC);
}

#[tokio::test(start_paused = true)]
async fn one_reading_plans_a_reserved_poll_just_after_the_predicted_end() {
    let mut plan = PollPlan::new(ScheduleConfig::default());
    let t0 = Instant::now();
    // Created 20 s ago by the provider's stamp; answered instantly; 40 % done.
    plan.observed(
        "a",
        &status(JobState::Running(Some(0.4)), 20 * SEC),
        t0,
        t0,
        wall(),
    );
    let reading = ProgressReading {
        age_ms: 20_000.0,
        progress: 0.4,
        uncertainty_ms: 0.0,
    };
    let end = predict_completion_ms(
        &[reading],
        None,
        ms(ScheduleConfig::default().lag_allowance),
    )
    .unwrap();
    let watch = &plan.watches["a"];
    assert_eq!(watch.purpose, Purpose::Final);
    let expected = t0 - 20 * SEC + Duration::from_secs_f64(end / 1e3) + Duration::from_millis(300);
    let off = watch.next.max(expected) - watch.next.min(expected);
    assert!(
        off < Duration::from_millis(2),
        "{:?} vs {expected:?}",
        watch.next
    );
    assert!(watch.next > t0, "the end lies ahead");
}

#[tokio::test(start_paused = true)]
async fn a_reading_just_after_the_queue_is_followed_by_a_second_before_any_guess() {
    let mut plan = PollPlan::new(ScheduleConfig::default());
    let t0 = Instant::now();
    // 1 % done at age 10 s: with no queue time learned, the end could be anywhere from
    // about 19 s (a 9 s queue) to 1,000 s (none). Read again one age later instead.
    plan.observed(
        "a",
        &status(JobState::Running(Some(0.01)), 10 * SEC),
        t0,
        t0,
        wall(),
    );
    assert_eq!(plan.watches["a"].next, t0 + 10 * SEC);
    assert_eq!(plan.watches["a"].purpose, Purpose::Probe);
    // Once a finished job has shown the queue, one reading is enough.
    Learned::push(&mut plan.learned.queue, 9_500.0);
    plan.observed(
        "b",
        &status(JobState::Running(Some(0.01)), 10 * SEC),
        t0,
        t0,
        wall(),
    );
    assert_eq!(plan.watches["b"].purpose, Purpose::Final);
    // 9.5 s queued, 0.5 s for 1 %: 59.5 s after creation.
    let expected = t0 - 10 * SEC + Duration::from_millis(59_500 + 300);
    let next = plan.watches["b"].next;
    let off = next.max(expected) - next.min(expected);
    assert!(off < Duration::from_millis(2), "{next:?} vs {expected:?}");
}

#[tokio::test(start_paused = true)]
async fn two_readings_extrapolate_the_line() {
    let mut plan = PollPlan::new(ScheduleConfig::default());
    let t0 = Instant::now();
    plan.observed(
        "a",
        &status(JobState::Running(Some(0.2)), 20 * SEC),
        t0,
        t0,
        wall(),
    );
    let t1 = t0 + 10 * SEC;
    plan.observed(
        "a",
        &status(JobState::Running(Some(0.3)), 30 * SEC),
        t1,
        t1,
        wall() + 10 * SEC,
    );
    // 10 % per 10 s, 70 % to go: ends 70 s after the second reading.
    let expected = t1 + 70 * SEC + Duration::from_millis(300);
    let next = plan.watches["a"].next;
    let off = next.max(expected) - next.min(expected);
    assert!(off < Duration::from_millis(2), "{next:?} vs {expected:?}");
}

/// A running reading of `value` as written (and as the component scales it alone).
fn written(value: f64, created_ago: Duration) -> JobStatus {
    let alone = if value > 1.0 { value / 100.0 } else { value };
    JobStatus {
        progress_reading: Some(happyhorse_sandbox::api::ProgressReading {
            value,
            marked_percent: false,
        }),
        ..status(JobState::Running(Some(alone)), created_ago)
    }
}

#[tokio::test(start_paused = true)]
async fn readings_kept_before_a_job_shows_percentages_are_read_again() {
    let mut plan = PollPlan::new(ScheduleConfig::default());
    let t0 = Instant::now();
    let first = plan.observed("a", &written(0.6, 3 * SEC), t0, t0, wall());
    assert_eq!((first.fraction, first.shown), (Some(0.6), None));
    let kept = |plan: &PollPlan| -> Vec<f64> {
        plan.watches["a"]
            .readings
            .iter()
            .map(|r| r.progress)
            .collect()
    };
    assert_eq!(
        kept(&plan),
        [0.6],
        "planned with as the documented fraction"
    );
    let t1 = t0 + 17 * SEC;
    let second = plan.observed("a", &written(6.0, 20 * SEC), t1, t1, wall() + 17 * SEC);
    assert!(second.now_percent);
    assert_eq!(second.shown, Some(0.06));
    assert_eq!(
        kept(&plan),
        [0.6 / 100.0, 0.06],
        "the first read again as 0.6 %"
    );
    // 0.6 % at 3 s and 6 % at 20 s: about 5.4 % per 17 s, so the end is minutes away, not
    // the seconds 60 % at 3 s would have promised.
    assert!(plan.watches["a"].next > t1 + 60 * SEC);
}

#[tokio::test(start_paused = true)]
async fn queued_jobs_are_read_again_as_the_queue_is_likely_to_clear() {
    let mut plan = PollPlan::new(ScheduleConfig::default());
    let t0 = Instant::now();
    plan.observed("a", &status(JobState::Queued, 30 * SEC), t0, t0, wall());
    assert_eq!(plan.watches["a"].next, t0 + 15 * SEC);
    assert_eq!(plan.watches["a"].purpose, Purpose::Probe);
    plan.observed("b", &status(JobState::Queued, SEC), t0, t0, wall());
    assert_eq!(
        plan.watches["b"].next,
        t0 + SEC,
        "not sooner than the floor"
    );
}

#[tokio::test(start_paused = true)]
async fn without_progress_the_components_hint_is_followed() {
    let mut plan = PollPlan::new(ScheduleConfig::default());
    let t0 = Instant::now();
    plan.observed(
        "a",
        &status(JobState::Running(None), 30 * SEC),
        t0,
        t0,
        wall(),
    );
    assert_eq!(plan.watches["a"].next, t0 + Duration::from_millis(7_000));
    assert_eq!(plan.watches["a"].purpose, Purpose::Probe);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_job_is_never_left_longer_than_the_largest_gap() {
    let mut plan = PollPlan::new(ScheduleConfig::default());
    let t0 = Instant::now();
    // 0.1 % after an hour: the line says another 41 days.
    plan.observed(
        "a",
        &status(JobState::Running(Some(0.001)), 3_600 * SEC),
        t0,
        t0,
        wall(),
    );
    assert_eq!(plan.watches["a"].next, t0 + 600 * SEC);
}

#[tokio::test(start_paused = true)]
async fn an_ended_job_is_let_go_and_teaches_its_length_and_queue() {
    let mut plan = PollPlan::new(ScheduleConfig::default());
    let t0 = Instant::now();
    // Read at age 30 s, 25 % done; it completes 60 s after creation.
    plan.observed(
        "a",
        &status(JobState::Running(Some(0.25)), 30 * SEC),
        t0,
        t0,
        wall(),
    );
    // Polled 40 s later, the stamps unchanged: created 30 s before the first reading,
    // completed 30 s after it.
    let t1 = t0 + 40 * SEC;
    let mut done = status(JobState::Completed(vec!["u".into()]), 30 * SEC);
    let completed = wall() + 30 * SEC;
    done.completed_at = Some(format!(
        "{:.3}",
        completed.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
    ));
    plan.observed("a", &done, t1, t1, wall() + 40 * SEC);
    assert!(plan.watches.is_empty());
    let total = plan.learned.total[0];
    assert!((total - 60_000.0).abs() < 2.0, "{total}");
    // p = (age − q) / (total − q): 0.25 = (30 − q) / (60 − q) → q = 20 s.
    let queue = plan.learned.queue[0];
    assert!((queue - 20_000.0).abs() < 5.0, "{queue}");
}

#[tokio::test(start_paused = true)]
async fn a_skewed_clock_cannot_place_creation_outside_our_own_submit() {
    let t0 = Instant::now();
    let submit = (t0, t0 + SEC);
    // The stamp says an hour ago (our clock runs an hour ahead): the submit bounds it.
    let created = creation(
        Some(&stamp(3_600 * SEC)),
        t0 + 5 * SEC,
        wall(),
        Some(submit),
    );
    assert_eq!(created, Some(t0));
    // In the future: the answer bounds it.
    let created = creation(
        Some(&stamp(Duration::ZERO)),
        t0 + 5 * SEC,
        wall() - 60 * SEC,
        Some(submit),
    );
    assert_eq!(created, Some(t0 + SEC));
    // Unreadable: the submit's sending time.
    assert_eq!(creation(Some("soon"), t0, wall(), Some(submit)), Some(t0));
    assert_eq!(creation(None, t0, wall(), None), None);
}

#[tokio::test(start_paused = true)]
async fn probes_and_submits_yield_to_reserved_polls() {
    // Five requests a minute; one already spent; three polls reserved 10–30 s ahead.
    let budget = budget(5);
    drop(budget.acquire().await);
    let mut plan = PollPlan::new(ScheduleConfig::default());
    let now = Instant::now();
    for (i, at) in [10, 20, 30].into_iter().enumerate() {
        let watch = plan.watch(&format!("final-{i}"), now);
        watch.next = now + at * SEC;
        watch.purpose = Purpose::Final;
    }
    // 1 spent + 3 reserved + this one = 5: a probe due now fits…
    plan.watch("probe", now);
    assert_eq!(plan.poll_turn("probe", now, &budget), Turn::Go);
    drop(budget.acquire().await);
    // …but the next one would crowd out a reserved poll, and so would a submit.
    let watch = plan.watch("probe-2", now);
    watch.next = now;
    assert!(matches!(
        plan.poll_turn("probe-2", now, &budget),
        Turn::Wait(_)
    ));
    assert!(matches!(plan.submit_turn(now, &budget), Turn::Wait(_)));
    // A reserved poll itself never waits for room: it is what the room was kept for.
    plan.watches.get_mut("final-0").unwrap().next = now;
    assert_eq!(plan.poll_turn("final-0", now, &budget), Turn::Go);
    // Once the spent requests leave the window, probes go again.
    let later = now + budget.span() + SEC;
    plan.watches.retain(|id, _| id.starts_with("probe"));
    assert_eq!(plan.poll_turn("probe-2", later, &budget), Turn::Go);
}

#[tokio::test(start_paused = true)]
async fn submits_also_leave_room_for_probes_due_soon() {
    let budget = budget(2);
    drop(budget.acquire().await);
    let mut plan = PollPlan::new(ScheduleConfig::default());
    let now = Instant::now();
    // A probe due in 5 s (within the 20 s horizon) takes the last slot.
    plan.watch("soon", now).next = now + 5 * SEC;
    assert!(matches!(plan.submit_turn(now, &budget), Turn::Wait(_)));
    // One due in a minute does not.
    plan.watch("soon", now).next = now + 60 * SEC;
    assert_eq!(plan.submit_turn(now, &budget), Turn::Go);
}

#[tokio::test(start_paused = true)]
async fn a_turn_waits_for_its_time_and_wakes_when_a_reservation_is_dropped() {
    let budget = Arc::new(budget(2));
    let scheduler = Arc::new(PollScheduler::new(
        budget.clone(),
        ScheduleConfig::default(),
    ));
    let t0 = Instant::now();
    scheduler.submitted("a", t0, t0);
    let plugin = OutboundPolicy::default();
    scheduler.poll_turn("a", &plugin).await;
    assert_eq!(
        plugin.forfeit_prepaid(),
        1,
        "the grant was handed to the plugin"
    );
    assert_eq!(budget.granted(), 1);
    assert_eq!(
        Instant::now(),
        t0 + 10 * SEC,
        "the first probe waits its age"
    );
    scheduler.forget("a");
    // Handed back unused (nothing was sent), it takes no place; one request sent and
    // answered does.
    assert!(budget.fits(Instant::now(), &[Instant::now()]));
    drop(budget.acquire_unpaced().await);

    // The window holds one request; a reserved poll in 30 s holds the other slot.
    scheduler.retry("final", Duration::from_secs(30));
    scheduler.plan().watches.get_mut("final").unwrap().purpose = Purpose::Final;
    let waiting = tokio::spawn({
        let scheduler = scheduler.clone();
        async move {
            let _permit = scheduler.submit_turn().await;
            Instant::now()
        }
    });
    tokio::time::sleep(5 * SEC).await;
    assert!(!waiting.is_finished());
    let dropped = Instant::now();
    scheduler.forget("final");
    assert_eq!(
        waiting.await.unwrap(),
        dropped,
        "woken by the change, not a timer"
    );
}

#[tokio::test(start_paused = true)]
async fn a_job_found_still_running_at_its_end_is_not_polled_again_at_once() {
    let mut plan = PollPlan::new(ScheduleConfig::default());
    let t0 = Instant::now();
    // Nearly done at the probe: the end is predicted within milliseconds…
    plan.observed(
        "a",
        &status(JobState::Running(Some(0.999)), 60 * SEC),
        t0,
        t0,
        wall(),
    );
    let first = plan.watches["a"].next;
    assert_eq!(
        first,
        t0 + SEC,
        "…but a reading right after says nothing new"
    );
    // …and one found still running at the final poll is read again no sooner either.
    plan.observed(
        "a",
        &status(JobState::Running(Some(0.9995)), 60 * SEC),
        first,
        first,
        wall() + SEC,
    );
    assert!(plan.watches["a"].next >= first + SEC);
}

#[tokio::test(start_paused = true)]
async fn requests_let_out_hold_their_place_until_the_budget_logs_them() {
    // Three a minute, none spent: a probe let out (not yet logged by the budget) and a
    // submit let out leave room for exactly one more.
    let budget = budget(3);
    let mut plan = PollPlan::new(ScheduleConfig::default());
    let now = Instant::now();
    assert_eq!(plan.poll_turn("a", now, &budget), Turn::Go);
    assert_eq!(plan.submit_turn(now, &budget), Turn::Go);
    plan.watch("b", now);
    plan.watch("c", now);
    assert_eq!(plan.poll_turn("b", now, &budget), Turn::Go);
    assert!(matches!(plan.poll_turn("c", now, &budget), Turn::Wait(_)));
    // The probe's grant is logged: its place is the budget's log's business now.
    plan.watches.get_mut("a").unwrap().place = Place::Logged;
    assert_eq!(plan.poll_turn("c", now, &budget), Turn::Go);
}

#[tokio::test(start_paused = true)]
async fn submits_keep_the_budgets_pace() {
    // Fifty a minute and none spent: room for a burst, but one submit per 1.2 s.
    let budget = budget(50);
    let mut plan = PollPlan::new(ScheduleConfig::default());
    let now = Instant::now();
    let pace = budget.pace();
    assert_eq!(plan.submit_turn(now, &budget), Turn::Go);
    assert_eq!(plan.submit_turn(now, &budget), Turn::Wait(now + pace));
    assert_eq!(plan.submit_turn(now + pace, &budget), Turn::Go);
    // Polls keep their own times: a probe due now goes beside them.
    assert_eq!(plan.poll_turn("a", now + pace, &budget), Turn::Go);
}

#[tokio::test(start_paused = true)]
async fn a_second_submit_wakes_one_pace_after_the_first() {
    let budget = Arc::new(budget(50));
    let scheduler = Arc::new(PollScheduler::new(
        budget.clone(),
        ScheduleConfig::default(),
    ));
    let t0 = Instant::now();
    let plugin = OutboundPolicy::default();
    let (first, second) = tokio::join!(
        async {
            let permit = scheduler.submit_turn().await;
            let at = Instant::now();
            permit.pay(&plugin).await;
            at
        },
        async {
            let permit = scheduler.submit_turn().await;
            let at = Instant::now();
            permit.pay(&plugin).await;
            at
        },
    );
    let (early, late) = (first.min(second), first.max(second));
    assert_eq!((early, late), (t0, t0 + budget.pace()));
    assert_eq!(budget.granted(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_submit_permit_holds_its_place_until_paid_or_dropped() {
    let budget = Arc::new(budget(2));
    let scheduler = PollScheduler::new(budget.clone(), ScheduleConfig::default());
    let plugin = OutboundPolicy::default();
    let first = scheduler.submit_turn().await;
    let second = scheduler.submit_turn().await;
    // Two places held, none granted yet: a third waits (longer than any pace).
    let third = tokio::time::timeout(budget.span() * 2, scheduler.submit_turn()).await;
    assert!(third.is_err());
    // Dropping one gives its place back…
    drop(second);
    let third = scheduler.submit_turn().await;
    // …and paying turns a place into a grant, prepaid to the plugin.
    first.pay(&plugin).await;
    assert_eq!((budget.granted(), plugin.forfeit_prepaid()), (1, 1));
    assert_eq!(scheduler.plan().submits_in_flight, 1);
    drop(third);
    assert_eq!(scheduler.plan().submits_in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn absurd_progress_or_configuration_never_panics() {
    let mut plan = PollPlan::new(ScheduleConfig::default());
    // A queue time learned, so one reading makes a prediction: centuries away.
    Learned::push(&mut plan.learned.queue, 5_000.0);
    let t0 = Instant::now();
    for p in [1e-300, 1e-18, f64::MIN_POSITIVE] {
        plan.observed(
            "a",
            &status(JobState::Running(Some(p)), 10 * SEC),
            t0,
            t0,
            wall(),
        );
        assert_eq!(plan.watches["a"].next, t0 + 600 * SEC, "progress {p}");
        plan.watches.clear();
    }
    // Gaps the wrong way round, and a day-long everything.
    let backwards = ScheduleConfig {
        min_gap: 60 * SEC,
        max_gap: SEC,
        ..ScheduleConfig::default()
    };
    let mut plan = PollPlan::new(backwards);
    plan.observed(
        "a",
        &status(JobState::Running(Some(0.5)), 10 * SEC),
        t0,
        t0,
        wall(),
    );
    assert_eq!(plan.watches["a"].next, t0 + SEC);
    let mut plan = PollPlan::new(ScheduleConfig::default().scaled(1e-300));
    plan.submitted("a", t0, t0);
    assert_eq!(plan.watches["a"].next, t0 + DAY);
    // A factor that is no factor changes nothing.
    for factor in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert_eq!(
            ScheduleConfig::default().scaled(factor),
            ScheduleConfig::default()
        );
    }
}

#[test]
fn scaling_divides_every_timing() {
    let fast = ScheduleConfig::default().scaled(10.0);
    assert_eq!(fast.first_probe, SEC);
    assert_eq!(fast.margin, Duration::from_millis(30));
    assert_eq!(fast.max_gap, 60 * SEC);
}

/// A plan whose learner has seen 40 jobs of 3 s clips: created, 60 s in all, progress
/// linear after a 10 s queue, read at 20, 30, 40 and 50 s.
fn taught(config: ScheduleConfig) -> PollPlan {
    let mut plan = PollPlan::new(config);
    let class = JobClass::new(3, "720p");
    for i in 0..40 {
        let total = 58_000.0 + f64::from(i % 5) * 1_000.0;
        let readings: Vec<Reading> = [20_000.0, 30_000.0, 40_000.0, 50_000.0]
            .into_iter()
            .map(|age| Reading {
                age_ms: age,
                progress: (age - 10_000.0) / (total - 10_000.0),
            })
            .collect();
        plan.learner
            .learn(Record::new(class.clone(), total, &readings, 0).unwrap());
    }
    plan
}

#[tokio::test(start_paused = true)]
async fn a_taught_plan_polls_where_the_learned_end_says() {
    let mut plan = taught(ScheduleConfig::default());
    let t0 = Instant::now();
    let class = JobClass::new(3, "720p");
    // A new job: nine in ten like it ended after 58 s, all by 62 s; the spread (4 s)
    // is within the allowance without a reading (12 s), so the one poll goes at the late
    // edge.
    plan.submitted_as("a", class.clone(), t0, t0);
    let first = plan.watches["a"].next;
    assert_eq!(plan.watches["a"].purpose, Purpose::Final);
    assert!(
        (t0 + 61 * SEC..=t0 + 63 * SEC).contains(&first),
        "{:?}",
        first - t0
    );
    // Halfway through its render at 35 s: ends 24–26 s later.
    plan.observed(
        "a",
        &status(JobState::Running(Some(0.52)), 35 * SEC),
        t0 + 35 * SEC,
        t0 + 35 * SEC,
        wall(),
    );
    let next = plan.watches["a"].next - (t0 + 35 * SEC);
    assert!((22 * SEC..=28 * SEC).contains(&next), "{next:?}");
    assert_eq!(plan.counts.found_running, 1);
    // A job of a clip never seen borrows, rescaled (6 s: about twice as long).
    plan.submitted_as("b", JobClass::new(6, "720p"), t0, t0);
    let six = plan.watches["b"].next - t0;
    assert!((110 * SEC..=130 * SEC).contains(&six), "{six:?}");
}

#[tokio::test(start_paused = true)]
async fn a_wider_spread_than_the_allowance_is_read_again_near_its_early_edge() {
    let mut plan = taught(ScheduleConfig {
        lag_allowance: Duration::ZERO,
        blind_lag_allowance: 2 * SEC,
        ..ScheduleConfig::default()
    });
    let t0 = Instant::now();
    plan.submitted_as("a", JobClass::new(3, "720p"), t0, t0);
    // The first poll, without a reading: the early edge (58 s) plus that allowance.
    let first = plan.watches["a"].next - t0;
    assert!((60 * SEC..=61 * SEC).contains(&first), "{first:?}");
    // Read at 35 s: the early edge of what is left (21 s), no allowance.
    found_at(&mut plan, "a", t0, JobState::Running(Some(0.52)), 35 * SEC);
    let next = plan.watches["a"].next - (t0 + 35 * SEC);
    assert!((21 * SEC..22 * SEC).contains(&next), "{next:?}");
    // A job that reports no progress at 50 s: its age alone says 8–12 s are left; no
    // reading to go by, so the early edge plus that allowance again.
    plan.submitted_as("b", JobClass::new(3, "720p"), t0, t0);
    found_at(&mut plan, "b", t0, JobState::Running(None), 50 * SEC);
    let silent = plan.watches["b"].next - (t0 + 50 * SEC);
    assert!((10 * SEC..11 * SEC).contains(&silent), "{silent:?}");
    // A reading no finished job came near (5 % at 12 s; theirs were 19 % and more at
    // 20 s): predicted from age alone (46–50 s left), so that allowance again.
    plan.submitted_as("c", JobClass::new(3, "720p"), t0, t0);
    found_at(&mut plan, "c", t0, JobState::Running(Some(0.05)), 12 * SEC);
    let unmatched = plan.watches["c"].next - (t0 + 12 * SEC);
    assert!((48 * SEC..49 * SEC).contains(&unmatched), "{unmatched:?}");
}

#[tokio::test(start_paused = true)]
async fn an_ended_job_teaches_the_learner_and_waits_to_be_persisted() {
    let mut plan = PollPlan::new(ScheduleConfig::default());
    let t0 = Instant::now();
    // Two jobs already watched (one resumed, one submitted) when "a" is submitted.
    plan.watch("resumed", t0);
    plan.submitted("b", t0, t0);
    plan.submitted_as("a", JobClass::new(3, "720p"), t0, t0);
    plan.observed(
        "a",
        &status(JobState::Running(Some(0.5)), 30 * SEC),
        t0 + 30 * SEC,
        t0 + 30 * SEC,
        wall(),
    );
    plan.observed(
        "a",
        &status(JobState::Completed(vec!["u".into()]), 60 * SEC),
        t0 + 60 * SEC,
        t0 + 60 * SEC,
        wall(),
    );
    assert_eq!(plan.learner.len(), 1);
    let record = &plan.outbox[0];
    assert_eq!(record.class, JobClass::new(3, "720p"));
    assert_eq!(record.readings.len(), 1);
    assert!((record.total_ms - 60_000.0).abs() < 2.0, "{record:?}");
    assert_eq!(record.load, Some(2));
    assert_eq!(plan.counts.found_ended, 1);
    // A job this run did not submit has no known load.
    let done = JobState::Completed(vec!["u".into()]);
    found_at(&mut plan, "resumed", t0, done, 60 * SEC);
    assert_eq!(plan.outbox[1].load, None);
}

#[tokio::test(start_paused = true)]
async fn the_previous_scheduler_ignores_what_was_learned() {
    let mut plan = taught(ScheduleConfig {
        learn: false,
        ..ScheduleConfig::default()
    });
    let t0 = Instant::now();
    plan.submitted_as("a", JobClass::new(3, "720p"), t0, t0);
    assert_eq!(plan.watches["a"].purpose, Purpose::Probe);
    assert_eq!(plan.counts.planned_by_learner, 0);
}

#[tokio::test(start_paused = true)]
async fn a_cold_start_guess_is_brought_forward_once_the_learner_knows_better() {
    let mut plan = PollPlan::new(ScheduleConfig::default());
    let t0 = Instant::now();
    // Nothing learned: 0.1 % at 30 s, and a queue of 29.9 s already learned by the old
    // rule, puts the end at the largest gap.
    Learned::push(&mut plan.learned.queue, 29_000.0);
    plan.submitted_as("a", JobClass::new(3, "720p"), t0, t0);
    plan.observed(
        "a",
        &status(JobState::Running(Some(0.001)), 30 * SEC),
        t0 + 30 * SEC,
        t0 + 30 * SEC,
        wall(),
    );
    assert_eq!(plan.watches["a"].next, t0 + 630 * SEC);
    // Then a job finishes while the learner knows 40 of its class: "a" is planned
    // again from its last observation, far sooner.
    let taught = taught(ScheduleConfig::default());
    plan.learner = taught.learner;
    plan.submitted_as("b", JobClass::default(), t0, t0);
    plan.observed(
        "b",
        &status(JobState::Completed(vec!["u".into()]), 60 * SEC),
        t0 + 60 * SEC,
        t0 + 60 * SEC,
        wall(),
    );
    let next = plan.watches["a"].next;
    assert!(next < t0 + 90 * SEC, "{:?}", next - t0);
    assert!(plan.watches["a"].by_learner);
}

#[tokio::test(start_paused = true)]
async fn a_job_older_than_every_job_like_it_is_read_again_after_a_tenth_of_its_age() {
    let mut plan = taught(ScheduleConfig::default());
    let t0 = Instant::now();
    plan.submitted_as("a", JobClass::new(3, "720p"), t0, t0);
    // 200 s old, no progress: every job like it ended by 62 s.
    found_at(&mut plan, "a", t0, JobState::Running(None), 200 * SEC);
    let gap = plan.watches["a"].next - (t0 + 200 * SEC);
    assert!((20 * SEC..=21 * SEC).contains(&gap), "{gap:?}");
}

#[tokio::test(start_paused = true)]
async fn a_lone_job_on_an_idle_budget_is_polled_every_idle_gap_not_left_to_its_plan() {
    let budget = budget(50);
    let mut plan = PollPlan::new(ScheduleConfig::default());
    let gap = plan.config.idle_gap;
    let t0 = Instant::now();
    plan.submitted("lone", t0, t0 + SEC);
    let planned = plan.watches["lone"].next;
    assert!(
        planned > t0 + SEC + gap,
        "its first probe is later than the idle gap"
    );
    // Before the gap: it waits for the gap, not for its plan.
    assert_eq!(
        plan.poll_turn("lone", t0 + SEC, &budget),
        Turn::Wait(t0 + SEC + gap)
    );
    // At the gap, with the budget idle, it goes, held in the budget from now.
    let at = t0 + SEC + gap;
    assert_eq!(plan.poll_turn("lone", at, &budget), Turn::Go);
    assert_eq!(plan.watches["lone"].next, at);
    assert_eq!(plan.counts.idle, 1);
    // Found queued: the next one is at most a gap after that answer.
    found_at(&mut plan, "lone", t0, JobState::Queued, SEC + gap);
    match plan.poll_turn("lone", at, &budget) {
        Turn::Wait(until) => assert!(until > at && until <= at + gap, "{until:?}"),
        Turn::Go => panic!("polled again at once"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_busy_budget_or_one_without_a_limit_leaves_polls_to_their_plan() {
    let t0 = Instant::now();
    // Half the window spent: not idle, so the job waits for its plan (looking again soon).
    let busy = budget(50);
    for _ in 0..26 {
        drop(busy.acquire_unpaced().await);
    }
    let mut plan = PollPlan::new(ScheduleConfig::default());
    plan.submitted("a", t0, t0);
    let planned = plan.watches["a"].next;
    let at = t0 + plan.config.idle_gap;
    match plan.poll_turn("a", at, &busy) {
        Turn::Wait(until) => assert!(until <= planned && until > at, "{until:?}"),
        Turn::Go => panic!("polled early on a busy budget"),
    }
    assert_eq!(plan.counts.idle, 0);
    // No limit at all (the tests' sandbox): nothing lapses, so nothing is polled early.
    let unlimited = budget(0);
    let mut plan = PollPlan::new(ScheduleConfig::default());
    plan.submitted("a", t0, t0);
    assert_eq!(plan.poll_turn("a", at, &unlimited), Turn::Wait(planned));
    // And `idle_gap` zero turns it off.
    let mut plan = PollPlan::new(ScheduleConfig {
        idle_gap: Duration::ZERO,
        ..ScheduleConfig::default()
    });
    plan.submitted("a", t0, t0);
    assert_eq!(plan.poll_turn("a", at, &budget(50)), Turn::Wait(planned));
}
