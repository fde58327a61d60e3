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
