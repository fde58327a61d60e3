//! Shot names and output stems: what a file system takes, what the pipeline keeps for its own
//! files, and stems that a job's numbered outputs would make collide.

use super::{Problem, Shot};

/// Output stems the pipeline keeps for its own files in the output folder (`journal.sqlite`,
/// `journal.lock`, `manifest.json`, `index.html` and their temporary files). Outputs are
/// always saved with a video extension, so they could not overwrite these anyway; refusing
/// the stems keeps the folder unambiguous for people too.
pub const RESERVED_STEMS: &[&str] = &["journal", "manifest", "index"];

pub(super) fn is_reserved(stem: &str) -> bool {
    let lower = stem.to_ascii_lowercase();
    RESERVED_STEMS
        .iter()
        .any(|r| lower == *r || lower.starts_with(&format!("{r}.")))
}

/// Whether `stem` is what a job with several outputs names its files after `base`:
/// `<base>-<n>` (compared without case, as some file systems do).
pub(super) fn numbered_from(stem: &str, base: &str) -> bool {
    let (stem, base) = (stem.to_ascii_lowercase(), base.to_ascii_lowercase());
    stem.strip_prefix(&base)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// Shots whose files could overwrite another's: a job may return several outputs, saved as
/// `<output>-1`, `<output>-2`, …, so shot `clip` and shot `clip-1` would meet. Stems are
/// unique already; this refuses the numbered forms.
pub(super) fn stem_collisions(shots: &[Shot]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for shot in shots {
        if let Some(other) = shots
            .iter()
            .find(|o| o.name != shot.name && numbered_from(&shot.output, &o.output))
        {
            problems.push(Problem {
                shot: Some(format!("\"{}\"", shot.name)),
                field: "output".into(),
                message: format!(
                    "{:?} is how shot \"{}\" names its files when its job returns several outputs ({}-1, {}-2, …); give one of them another `output`",
                    shot.output, other.name, other.output, other.output
                ),
            });
        }
    }
    problems
}

/// Whether `s` is usable as a shot name and a file name on every common file system.
pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Why `name` cannot name a one-shot's clip (`generate --output NAME`), or `None`: the rules
/// of a storyboard's `output`, since it names files the same way.
pub fn output_name_problem(name: &str) -> Option<String> {
    if !valid_name(name) {
        Some(format!(
            "--output {:?}: use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.' (it names a file in the output folder)",
            crate::untrusted::shown(name)
        ))
    } else if is_reserved(name) {
        Some(format!(
            "--output {name:?}: {} are the pipeline's own file names; choose another",
            RESERVED_STEMS.join(", ")
        ))
    } else {
        None
    }
}

/// The files in `dir` that a clip saved as `name` (or `name-1`, `name-2`, … when its job
/// returns several) would overwrite: any file whose stem is one of those, whatever its
/// extension, except a `.part` left by an interrupted download (the download that resumes it
/// replaces it). A clip may have been paid for; it is never overwritten.
pub fn taken_by_output(dir: &std::path::Path, name: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut taken: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|file| !file.ends_with(".part"))
        .filter(|file| {
            let stem = file.split_once('.').map_or(file.as_str(), |(stem, _)| stem);
            stem.eq_ignore_ascii_case(name) || numbered_from(stem, name)
        })
        .collect();
    taken.sort();
    taken
}

#[cfg(test)]
mod output_tests {
    use super::{output_name_problem, taken_by_output};

    #[test]
    fn output_names_follow_the_storyboard_rules() {
        assert_eq!(output_name_problem("intro_2.take-1"), None);
        for bad in [
            "", "../x", "a/b", ".hidden", "manifest", "Index", "sp ace", "é",
        ] {
            assert!(output_name_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn a_clip_is_never_saved_over_a_file_of_its_names() {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "intro.mp4",
            "Intro-2.webm",
            "intro.part",
            "intro-x.mp4",
            "introduction.mp4",
        ] {
            std::fs::write(dir.path().join(file), b"").unwrap();
        }
        assert_eq!(
            taken_by_output(dir.path(), "intro"),
            ["Intro-2.webm", "intro.mp4"]
        );
        assert!(taken_by_output(dir.path(), "outro").is_empty());
        assert!(taken_by_output(&dir.path().join("missing"), "intro").is_empty());
    }
}
