//! The learner on made-up histories: classes, readings near a job's, loads, bounds.

use super::*;

/// A synthetic fleet: a queue of 2–10 s, then a render of `per_sec` × clip length ±20 %,
/// a tenth of the jobs straggling at 2.5×, progress an S-curve with ±3 % noise.
struct Fleet {
    state: u64,
}

struct Job {
    queue_ms: f64,
    render_ms: f64,
    noise_seed: u64,
}

impl Fleet {
    fn new(seed: u64) -> Self {
        Fleet { state: seed }
    }

    fn unit(&mut self) -> f64 {
        // SplitMix64.
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn job(&mut self, clip_secs: u32) -> Job {
        let straggles = self.unit() < 0.1;
        let render = 12_000.0 * f64::from(clip_secs) * (0.8 + 0.4 * self.unit());
        Job {
            queue_ms: 2_000.0 + 8_000.0 * self.unit(),
            render_ms: if straggles { render * 2.5 } else { render },
            noise_seed: (self.unit() * 1e9) as u64,
        }
    }
}

impl Job {
    fn total(&self) -> f64 {
        self.queue_ms + self.render_ms
    }

    fn progress(&self, age_ms: f64) -> f64 {
        let t = ((age_ms - self.queue_ms) / self.render_ms).clamp(0.0, 1.0);
        let curve = t * t * t * (t * (t * 6.0 - 15.0) + 10.0);
        let wobble = ((self.noise_seed as f64 + age_ms / 250.0).sin()) * 0.03;
        (curve + wobble).clamp(0.0, 0.99)
    }

    /// Readings every `every_ms` from `from_ms` while it runs.
    fn readings(&self, from_ms: f64, every_ms: f64) -> Vec<Reading> {
        let mut age = from_ms;
        let mut out = Vec::new();
        while age < self.total() {
            out.push(Reading {
                age_ms: age,
                progress: self.progress(age),
            });
            age += every_ms;
        }
        out
    }

    fn record(&self, class: &JobClass) -> Record {
        Record::new(
            class.clone(),
            self.total(),
            &self.readings(5_000.0, 7_000.0),
            1_000,
        )
        .unwrap()
    }
}

fn trained(fleet: &mut Fleet, class: &JobClass, jobs: usize) -> Learner {
    let mut learner = Learner::default();
    for _ in 0..jobs {
        let job = fleet.job(class.clip_secs);
        learner.learn(job.record(class));
    }
    learner
}

#[test]
fn it_converges_on_a_known_fleet() {
    let class = JobClass::new(3, "720p");
    let mut fleet = Fleet::new(7);
    let learner = trained(&mut fleet, &class, 200);
    let (mut inside, mut errors, mut n) = (0, Vec::new(), 0);
    for _ in 0..200 {
        let job = fleet.job(3);
        // A reading somewhere in the render's middle.
        let age = job.queue_ms + job.render_ms * 0.6;
        let p = job.progress(age);
        let Some(remaining) = learner.predict(&class, age, Some(p), None) else {
            panic!("no prediction after 200 jobs");
        };
        let truth = job.total() - age;
        n += 1;
        if (remaining.early..=remaining.late).contains(&truth) {
            inside += 1;
        }
        errors.push((remaining.median - truth).abs() / job.render_ms);
    }
    // A 10–90 % band should hold about 80 % of the truths (stragglers excepted).
    assert!(inside * 100 >= n * 65, "{inside} of {n} inside the band");
    let median_error = quantile(errors, 0.5).unwrap();
    assert!(
        median_error < 0.12,
        "median error {median_error} of a render"
    );
    // Without progress, the age alone still predicts: the class's survival.
    let remaining = learner.predict(&class, 0.0, None, None).unwrap();
    assert!(
        (30_000.0..55_000.0).contains(&remaining.median),
        "{remaining:?}"
    );
}

#[test]
fn a_reading_far_ahead_of_the_jobs_age_is_not_believed() {
    let class = JobClass::new(3, "720p");
    let learner = trained(&mut Fleet::new(3), &class, 100);
    // A 0–100 job's "0.8" (0.8 %) six seconds in, read as 80 %: the prediction is the
    // one for a job that says nothing, not "nearly done".
    let misread = learner.predict(&class, 6_000.0, Some(0.8), None).unwrap();
    let silent = learner.predict(&class, 6_000.0, None, None).unwrap();
    assert_eq!(misread, silent);
    assert!(misread.early > 15_000.0, "{misread:?}");
    // The same reading at an age that allows it is believed.
    let believed = learner.predict(&class, 35_000.0, Some(0.8), None).unwrap();
    assert!(believed.median < 16_000.0, "{believed:?}");
}

#[test]
fn a_reading_undercut_later_is_dropped_from_what_a_job_teaches() {
    let class = JobClass::new(5, "720p");
    let readings = [
        // A 0–100 job: 0.8 %, read as 80 %, then 30 % and 60 %.
        Reading {
            age_ms: 5_000.0,
            progress: 0.8,
        },
        Reading {
            age_ms: 20_000.0,
            progress: 0.3,
        },
        // Noise: a little back is fine.
        Reading {
            age_ms: 30_000.0,
            progress: 0.62,
        },
        Reading {
            age_ms: 35_000.0,
            progress: 0.6,
        },
    ];
    let record = Record::new(class, 60_000.0, &readings, 0).unwrap();
    let kept: Vec<f64> = record.readings.iter().map(|r| r.progress).collect();
    assert_eq!(kept, [0.3, 0.62, 0.6]);
}

#[test]
fn a_straggler_does_not_poison_it() {
    let class = JobClass::new(3, "720p");
    let mut fleet = Fleet::new(11);
    let mut learner = trained(&mut fleet, &class, 60);
    let before = learner.predict(&class, 30_000.0, Some(0.5), None).unwrap();
    let job = fleet.job(3);
    // Ten times as slow: a stuck render that finally ended.
    let straggler = Job {
        render_ms: job.render_ms * 10.0,
        ..job
    };
    learner.learn(straggler.record(&class));
    let after = learner.predict(&class, 30_000.0, Some(0.5), None).unwrap();
    assert!(
        (after.median - before.median).abs() < before.median * 0.1,
        "{before:?} → {after:?}"
    );
    let silent_before = trained(&mut Fleet::new(11), &class, 60)
        .predict(&class, 0.0, None, None)
        .unwrap();
    let silent_after = learner.predict(&class, 0.0, None, None).unwrap();
    assert!(
        (silent_after.median - silent_before.median).abs() < silent_before.median * 0.1,
        "{silent_before:?} → {silent_after:?}"
    );
}

#[test]
fn a_busier_account_is_expected_to_wait_longer() {
    // A provider whose queue grows by a second for every job of ours already in flight.
    let class = JobClass::new(3, "720p");
    let mut fleet = Fleet::new(13);
    let mut learner = Learner::default();
    for i in 0..200 {
        let load = i % 50;
        let mut job = fleet.job(3);
        job.queue_ms += 1_000.0 * f64::from(load);
        learner.learn(job.record(&class).with_load(Some(load)));
    }
    let quiet = learner.predict(&class, 0.0, None, Some(2)).unwrap();
    let busy = learner.predict(&class, 0.0, None, Some(45)).unwrap();
    let unknown = learner.predict(&class, 0.0, None, None).unwrap();
    // The nearest 40 of loads 0–49 (four jobs each), loads 0–9 against 40–49: about 4.5 s
    // of extra queue against 44.5.
    let apart = busy.median - quiet.median;
    assert!(
        (33_000.0..49_000.0).contains(&apart),
        "{quiet:?} vs {busy:?}"
    );
    // The early edge a first poll is placed by moves with the load: a quiet account's
    // jobs are not polled late, a busy one's not early.
    assert!(
        quiet.early < unknown.early - 5_000.0,
        "{quiet:?} vs {unknown:?}"
    );
    assert!(
        busy.early > unknown.early + 15_000.0,
        "{busy:?} vs {unknown:?}"
    );
    // A job that outlived nearly every neighbour in load falls back on all jobs.
    let old = learner.predict(&class, 100_000.0, None, Some(2)).unwrap();
    assert_eq!(old, learner.predict(&class, 100_000.0, None, None).unwrap());
}

#[test]
fn records_without_a_load_predict_as_before() {
    // Jobs an older version saved, or too few that know their load.
    let class = JobClass::new(3, "720p");
    let learner = trained(&mut Fleet::new(17), &class, 100);
    let mut some = trained(&mut Fleet::new(17), &class, 100);
    for (i, record) in some
        .records
        .iter_mut()
        .enumerate()
        .take(LOAD_NEIGHBOURS - 1)
    {
        record.load = Some(i as u32);
    }
    for load in [Some(0), Some(30), None] {
        assert_eq!(
            learner.predict(&class, 0.0, None, load),
            learner.predict(&class, 0.0, None, None)
        );
        assert_eq!(
            some.predict(&class, 0.0, None, load),
            learner.predict(&class, 0.0, None, None)
        );
    }
}

#[test]
fn an_unseen_clip_borrows_from_the_others_rescaled() {
    let class = JobClass::new(3, "720p");
    let learner = trained(&mut Fleet::new(5), &class, 60);
    let three = learner.predict(&class, 0.0, None, None).unwrap();
    let six = learner
        .predict(&JobClass::new(6, "720p"), 0.0, None, None)
        .unwrap();
    let ratio = six.median / three.median;
    assert!((1.7..2.3).contains(&ratio), "{ratio}");
}

#[test]
fn it_is_bounded_and_old_jobs_age_out() {
    let class = JobClass::new(3, "720p");
    let mut learner = trained(&mut Fleet::new(1), &class, CAPACITY + 50);
    assert_eq!(learner.len(), CAPACITY);
    let week = MAX_AGE.as_millis() as u64;
    let mut fresh = Fleet::new(2).job(3).record(&class);
    fresh.ended_unix_ms = week + 10_000;
    learner.learn(fresh);
    learner.age_out(week + 5_000);
    assert_eq!(
        learner.len(),
        1,
        "only the job within a week of now is kept"
    );
}

#[test]
fn absurd_values_never_panic() {
    let class = JobClass::new(3, "720p");
    let mut learner = trained(&mut Fleet::new(9), &class, 30);
    for total in [f64::NAN, f64::INFINITY, -1.0, 0.0, 1e300] {
        assert!(
            Record::new(class.clone(), total, &[], 0).is_none(),
            "{total}"
        );
    }
    let odd = [
        Reading {
            age_ms: f64::NAN,
            progress: 0.5,
        },
        Reading {
            age_ms: 1.0,
            progress: f64::INFINITY,
        },
        Reading {
            age_ms: -5.0,
            progress: -0.5,
        },
        Reading {
            age_ms: 1e300,
            progress: 1e300,
        },
    ];
    let record = Record::new(JobClass::new(u32::MAX, ""), 1.0, &odd, u64::MAX).unwrap();
    assert!(record.readings.is_empty());
    learner.learn(record);
    learner.learn(Record::new(JobClass::new(0, "?"), 1e-300, &[], 0).unwrap());
    for age in [f64::NAN, -1.0, f64::INFINITY, 1e300, 0.0] {
        for p in [
            None,
            Some(f64::NAN),
            Some(-1.0),
            Some(2.0),
            Some(1e-300),
            Some(0.5),
        ] {
            for class in [&class, &JobClass::new(u32::MAX, "8k"), &JobClass::default()] {
                for load in [None, Some(0), Some(u32::MAX)] {
                    if let Some(r) = learner.predict(class, age, p, load) {
                        assert!(r.early <= r.median && r.median <= r.late, "{r:?}");
                    }
                }
            }
        }
    }
    learner.age_out(0);
    learner.age_out(u64::MAX);
    assert!(
        Learner::default()
            .predict(&class, 1.0, Some(0.5), Some(3))
            .is_none()
    );
    assert_eq!(JobClass::from_key("garbage"), JobClass::default());
    assert_eq!(JobClass::from_key(&class.key()), class);
}
