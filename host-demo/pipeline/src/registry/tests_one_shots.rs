//! The registry's one-shot jobs: the migration that adds them, their recorded sequence, and
//! what a crash leaves.

use super::*;
use crate::clip::PaidFor;
use happyhorse_sandbox::api::{CostEstimate, Mode, VideoRequest};
use rusqlite::Connection;

/// The endpoint the tests' jobs go to.
const E: &str = "https://api.example.com:443";

fn request() -> VideoRequest {
    VideoRequest {
        model: Some("happyhorse-1-1".into()),
        prompt: "a horse".into(),
        mode: Some(Mode::I2v),
        // A megabyte of inline image: stored as a digest, never whole.
        images: vec![format!("data:image/png;base64,{}", "A".repeat(1 << 20))],
        aspect_ratio: Some("16:9".into()),
        resolution: Some("720p".into()),
        duration_seconds: Some(5),
        seed: Some(7),
        watermark: Some(false),
    }
}

fn cost() -> CostEstimate {
    CostEstimate {
        currency: "USD".into(),
        billed_seconds: 5,
        micros_per_second: 140_000,
        total_micros: 700_000,
    }
}

fn new_job<'a>(request: &'a VideoRequest, cost: &'a CostEstimate, out: &'a Path) -> NewJob<'a> {
    NewJob {
        endpoint: E,
        base_url: Some("https://api.example.com"),
        emulated: false,
        request: Some(request),
        cost: Some(cost),
        out_dir: out,
        output: Some("intro"),
    }
}

#[test]
fn a_registry_from_before_one_shot_jobs_gains_them_and_keeps_its_submits() {
    for old_schema in [
        // Schema 1: no endpoints.
        "CREATE TABLE submits (fingerprint TEXT NOT NULL, journal TEXT NOT NULL,
             shot TEXT NOT NULL, job_id TEXT, at INTEGER NOT NULL,
             UNIQUE (fingerprint, journal, shot));
         INSERT INTO submits VALUES ('f', '/a/journal.sqlite', 's1', 'job_1', 5);",
        // Schema 2: endpoints, no one-shot jobs.
        "CREATE TABLE submits (fingerprint TEXT NOT NULL, journal TEXT NOT NULL,
             shot TEXT NOT NULL, job_id TEXT, at INTEGER NOT NULL, endpoint TEXT,
             UNIQUE (fingerprint, journal, shot, endpoint));
         INSERT INTO submits VALUES ('f', '/a/journal.sqlite', 's1', 'job_1', 5, NULL);",
    ] {
        let dir = tempfile::tempdir().unwrap();
        Connection::open(dir.path().join(FILE_NAME))
            .unwrap()
            .execute_batch(old_schema)
            .unwrap();
        let r = Registry::open_existing(dir.path())
            .unwrap()
            .expect("a file");
        let (request, cost) = (request(), cost());
        let row = r
            .record_submitting(&new_job(&request, &cost, dir.path()))
            .unwrap();
        r.record_created(row, "job_2").unwrap();
        let recent = r.recent(20).unwrap();
        assert_eq!(recent.len(), 2, "{recent:?}");
        let RecentJob::OneShot(job) = &recent[0] else {
            panic!("the one-shot job is newest: {recent:?}")
        };
        assert_eq!(job.job_id.as_deref(), Some("job_2"));
        let RecentJob::Storyboard(submit) = &recent[1] else {
            panic!("{recent:?}")
        };
        assert_eq!(
            (
                submit.shot.as_str(),
                submit.job_id.as_deref(),
                &submit.endpoint
            ),
            ("s1", Some("job_1"), &None)
        );
        // Its journal is gone: its state is unknown, and nothing fails for it.
        assert_eq!(submit.state, None);
        // The old submit still counts for every endpoint.
        assert_eq!(
            r.elsewhere("f", E, Path::new("/b/journal.sqlite"))
                .unwrap()
                .len(),
            1
        );
    }
}

#[test]
fn no_registry_is_made_by_reading_one() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Registry::open_existing(dir.path()).unwrap().is_none());
    assert!(!Registry::path_in(dir.path()).exists());
}

#[test]
fn a_job_is_recorded_before_its_submit_then_its_id_then_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let r = Registry::open(dir.path()).unwrap();
    let (request, cost) = (request(), cost());
    let row = r
        .record_submitting(&new_job(&request, &cost, dir.path()))
        .unwrap();
    let job = &r.one_shots(20).unwrap()[0];
    assert_eq!(
        (job.state, job.job_id.as_deref()),
        (JobState::Submitting, None)
    );
    assert_eq!(
        (job.cost_micros, job.currency.as_deref()),
        (Some(700_000), Some("USD"))
    );
    assert_eq!(job.output.as_deref(), Some("intro"));
    assert_eq!(job.base_url.as_deref(), Some("https://api.example.com"));
    // The request as sent, but the inline image kept as its digest: bytes, not megabytes.
    let stored = job.request.as_ref().unwrap();
    assert_eq!(stored["prompt"], "a horse");
    assert_eq!(stored["images"][0]["inline"], "image/png");
    assert!(stored.to_string().len() < 1000, "{stored}");

    r.record_created(row, "job_1").unwrap();
    let job = &r.one_shots(20).unwrap()[0];
    assert_eq!(
        (job.state, job.job_id.as_deref()),
        (JobState::Submitted, Some("job_1"))
    );

    let end = JobEnd {
        state: JobState::Downloaded,
        job_id: None,
        detail: None,
        files: vec![JobFile {
            path: "intro.mp4".into(),
            bytes: 10,
            sha256: "ab".into(),
            verdict: Some("matches".into()),
        }],
    };
    r.record_end(row, &end).unwrap();
    let job = &r.one_shots(20).unwrap()[0];
    assert_eq!(job.state, JobState::Downloaded);
    assert_eq!(
        job.job_id.as_deref(),
        Some("job_1"),
        "kept without a new one"
    );
    assert_eq!(job.files, end.files);
    assert_eq!(
        job.json()["files"][0]["path"],
        dir.path().join("intro.mp4").display().to_string()
    );
}

#[test]
fn a_crash_between_the_record_and_the_submit_leaves_it_submitting() {
    let dir = tempfile::tempdir().unwrap();
    {
        let r = Registry::open(dir.path()).unwrap();
        let (request, cost) = (request(), cost());
        r.record_submitting(&new_job(&request, &cost, dir.path()))
            .unwrap();
        // The process dies here: nothing more is written.
    }
    let again = Registry::open(dir.path()).unwrap();
    let jobs = again.one_shots(20).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].state, jobs[0].job_id.as_deref()),
        (JobState::Submitting, None)
    );
    assert!(!jobs[0].state.unfinished(), "nothing to pick up by id");
}

#[test]
fn resume_finds_the_request_a_job_was_paid_for_at_its_endpoint_only() {
    let dir = tempfile::tempdir().unwrap();
    let r = Registry::open(dir.path()).unwrap();
    let (request, cost) = (request(), cost());
    let row = r
        .record_submitting(&new_job(&request, &cost, dir.path()))
        .unwrap();
    r.record_created(row, "job_1").unwrap();

    let elsewhere = dir.path().join("elsewhere");
    let resumed = NewJob {
        request: None,
        cost: None,
        output: None,
        out_dir: &elsewhere,
        ..new_job(&request, &cost, dir.path())
    };
    let (same, known) = r.record_resumed(&resumed, "job_1").unwrap();
    assert_eq!(same, Some(row), "the same row");
    let (known_request, known_cost) = known.expect("the request is known");
    let paid_for = PaidFor::of(&known_request, &known_cost).expect("enough to check a clip");
    assert_eq!(
        paid_for,
        PaidFor::of(&request, &cost).unwrap(),
        "the same check as generate's"
    );
    let job = &r.one_shots(20).unwrap()[0];
    assert_eq!(
        (job.out_dir.as_path(), job.output.as_deref(), job.state),
        (elsewhere.as_path(), None, JobState::Submitted)
    );

    // Another endpoint's job of that id, or an id never recorded: a new row, nothing known.
    let other = NewJob {
        endpoint: "https://other.example.com:443",
        ..resumed
    };
    let (new_row, known) = r.record_resumed(&other, "job_1").unwrap();
    assert!(new_row.is_some_and(|new| new != row) && known.is_none());
    let (_, known) = r.record_resumed(&resumed, "job_9").unwrap();
    assert!(known.is_none());
    assert_eq!(r.one_shots(20).unwrap().len(), 3);
    assert_eq!(r.one_shots(2).unwrap().len(), 2, "the limit holds");
}

#[test]
fn a_downloaded_jobs_row_is_left_as_it_is_when_the_job_is_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let r = Registry::open(dir.path()).unwrap();
    let (request, cost) = (request(), cost());
    let job = new_job(&request, &cost, dir.path());
    let row = r.record_submitting(&job).unwrap();
    r.record_created(row, "job_1").unwrap();
    let end = JobEnd {
        state: JobState::Downloaded,
        job_id: None,
        detail: None,
        files: vec![],
    };
    r.record_end(row, &end).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    let again = NewJob {
        out_dir: &elsewhere,
        ..job
    };
    let (none, known) = r.record_resumed(&again, "job_1").unwrap();
    assert_eq!(none, None, "no row to keep in step");
    assert!(
        known.is_some(),
        "its request is still known, for the clip check"
    );
    let listed = &r.one_shots(20).unwrap()[0];
    assert_eq!(
        (listed.state, listed.out_dir.as_path()),
        (JobState::Downloaded, dir.path()),
        "where its files are"
    );
}

#[test]
fn a_stored_request_reads_back_as_what_was_paid_for() {
    let stored = one_shots::stored_request(&request());
    let back = one_shots::request_of(&serde_json::from_str(&stored).unwrap()).unwrap();
    assert_eq!(back.duration_seconds, Some(5));
    assert_eq!(back.resolution.as_deref(), Some("720p"));
    assert_eq!(back.aspect_ratio.as_deref(), Some("16:9"));
    assert_eq!(back.mode, Some(Mode::I2v));
    assert!(back.images.is_empty(), "described, never resent");
    // Not a request: nothing, rather than a panic.
    assert!(one_shots::request_of(&serde_json::json!([1, 2])).is_none());
    assert_eq!(JobState::parse("from-a-newer-version"), JobState::Unknown);
}
