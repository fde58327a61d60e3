//! Storyboards read from real files: defaults, JSON, output names, every problem at once.

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn defaults_apply_and_shots_override_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.png"), b"\x89PNG\r\n\x1a\nxx").unwrap();
    let path = write(
        dir.path(),
        "sb.toml",
        r#"
        [run]
        concurrency = 2
        max_cost = 3.5
        output = "clips"
        [defaults]
        resolution = "1080p"
        duration = 8
        [[shot]]
        name = "one"
        prompt = "p1"
        [[shot]]
        name = "two"
        prompt = "p2"
        mode = "i2v"
        images = ["a.png"]
        resolution = "720p"
        output = "second"
        "#,
    );
    let sb = Storyboard::load(&path).unwrap();
    assert_eq!(sb.problems, vec![]);
    assert_eq!(sb.settings.concurrency, Some(2));
    assert_eq!(sb.settings.max_cost_micros, Some(3_500_000));
    assert_eq!(
        sb.output_dir(Some(Path::new("out"))),
        dir.path().join("clips")
    );
    assert_eq!(sb.shots[0].request.resolution.as_deref(), Some("1080p"));
    assert_eq!(sb.shots[0].request.duration_seconds, Some(8));
    assert_eq!(sb.shots[0].output, "one");
    assert_eq!(sb.shots[1].request.resolution.as_deref(), Some("720p"));
    assert_eq!(sb.shots[1].output, "second");
    assert!(sb.shots[1].request.images[0].starts_with("data:image/png;base64,"));
    assert!(matches!(&sb.shots[1].images[0], ImageSource::File { path, .. } if path == "a.png"));
}

#[test]
fn json_is_accepted_and_the_default_output_is_named_after_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "board.json",
        r#"{"shots":[{"name":"a","prompt":"p","images":["https://x.example/i.png"],"mode":"i2v"}]}"#,
    );
    let sb = Storyboard::load(&path).unwrap();
    assert_eq!(sb.problems, vec![]);
    assert_eq!(sb.shots[0].request.images, vec!["https://x.example/i.png"]);
    assert_eq!(
        sb.output_dir(Some(Path::new("out"))),
        Path::new("out/board")
    );
    // Without --out-dir: next to the storyboard, whatever the working directory.
    let expected = std::path::absolute(dir.path()).unwrap().join("out/board");
    assert_eq!(sb.output_dir(None), expected);
    assert_eq!(output_dir(&path, None).unwrap(), expected);
}

#[test]
fn outputs_that_could_overwrite_each_other_or_the_pipelines_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "sb.toml",
        r#"
        [[shot]]
        name = "clip"
        prompt = "p"
        [[shot]]
        name = "clip-1"
        prompt = "p"
        [[shot]]
        name = "Index"
        prompt = "p"
        [[shot]]
        name = "other"
        output = "journal.lock"
        prompt = "p"
        [[shot]]
        name = "fine"
        output = "clip-one"
        prompt = "p"
        "#,
    );
    let sb = Storyboard::load(&path).unwrap();
    let refused: Vec<(Option<&str>, &str)> = sb
        .problems
        .iter()
        .map(|p| (p.shot.as_deref(), p.field.as_str()))
        .collect();
    assert_eq!(
        refused,
        vec![
            (Some("\"Index\""), "output"),
            (Some("\"other\""), "output"),
            (Some("\"clip-1\""), "output"),
        ],
        "{:#?}",
        sb.problems
    );
}

#[test]
fn every_problem_is_reported_with_its_shot_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "sb.toml",
        r#"
        [run]
        concurrency = 0
        colour = "blue"
        [defaults]
        prompt = "x"
        [[shot]]
        prompt = "no name"
        [[shot]]
        name = "dup"
        prompt = "p"
        duration = 5.5
        [[shot]]
        name = "dup"
        prompt = 3
        mode = "sideways"
        images = ["missing.png"]
        sead = 1
        "#,
    );
    let sb = Storyboard::load(&path).unwrap();
    let seen: Vec<(Option<&str>, &str)> = sb
        .problems
        .iter()
        .map(|p| (p.shot.as_deref(), p.field.as_str()))
        .collect();
    for expected in [
        (None, "run.concurrency"),
        (None, "run.colour"),
        (None, "defaults.prompt"),
        (Some("#1"), "name"),
        (Some("\"dup\""), "duration"),
        (Some("\"dup\""), "name"),
        (Some("\"dup\""), "prompt"),
        (Some("\"dup\""), "mode"),
        (Some("\"dup\""), "images[0]"),
        (Some("\"dup\""), "sead"),
    ] {
        assert!(
            seen.contains(&expected),
            "{expected:?} missing from {seen:?}"
        );
    }
    assert!(sb.shots.is_empty());
    assert_eq!(sb.listed, 3);
}
