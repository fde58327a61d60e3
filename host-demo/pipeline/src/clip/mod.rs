//! Whether a downloaded clip is what was paid for.
//!
//! A job is billed per second of video at a resolution, and the model always adds sound, so a
//! completed job's file is checked against exactly that: a readable MP4 whose video lasts the
//! requested seconds (within [`DURATION_TOLERANCE_MS`]), whose frame is the requested size
//! ([`happyhorse_core::limits::frame_size`]; only the short side when the aspect follows a
//! source image) and which has an audio track. The file is read by Mozilla's `mp4parse`
//! ([`read`]); the judgement ([`judge`]) is pure. A clip that fails is kept and reported —
//! "paid for X, received Y" with the amount — never resubmitted: that would pay twice.

mod read;

pub use read::{ReadError, inspect};

use crate::advice::money;
use happyhorse_core::limits::{frame_size, short_side};
use happyhorse_sandbox::api::{CostEstimate, VideoRequest};
use serde::{Deserialize, Serialize};

/// How far a clip's length may be from the request's and still count as delivered.
pub const DURATION_TOLERANCE_MS: u64 = 500;

/// What a file turned out to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    /// How long its video plays (the video track's, or the longest track's when there is no
    /// video), in milliseconds; `None` when the file does not say.
    pub duration_ms: Option<u64>,
    /// The video track's frame, when there is one.
    pub video: Option<Frame>,
    /// The audio track's codec (`aac`, `opus`, …), when there is one.
    pub audio: Option<String>,
}

/// A video track's frame and codec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// Width in pixels, as displayed.
    pub width: u32,
    /// Height in pixels, as displayed.
    pub height: u32,
    /// The codec (`h264`, `av1`, …).
    pub codec: String,
}

/// What a job was billed for: the clip it must deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaidFor {
    /// Seconds of video.
    pub duration_seconds: u32,
    /// The resolution asked (`720p`).
    pub resolution: String,
    /// The exact frame, when the request fixed the aspect ratio; `None` when it follows a
    /// source image (`i2v`), and only the short side is known.
    pub frame: Option<(u32, u32)>,
    /// The short side every frame of this resolution has.
    pub short_side: u32,
    /// The estimate for the job, as an amount (`$0.70`).
    pub amount: String,
}

impl PaidFor {
    /// What `request` (as `validate` normalized it) priced at `cost` must deliver; `None` when
    /// the request does not say (a job picked up by id alone) or names a resolution without
    /// a known frame.
    pub fn of(request: &VideoRequest, cost: &CostEstimate) -> Option<PaidFor> {
        let duration_seconds = request.duration_seconds?;
        let resolution = request.resolution.clone()?;
        let short_side = short_side(&resolution)?;
        // A ratio with no known frame is held to its resolution alone, as an image's is.
        let frame = request
            .aspect_ratio
            .as_deref()
            .and_then(|ratio| frame_size(&resolution, ratio));
        Some(PaidFor {
            duration_seconds,
            resolution,
            frame,
            short_side,
            amount: money(cost.total_micros, &cost.currency),
        })
    }

    /// "5 s of 1280×720 video with audio ($0.70)".
    fn describe(&self) -> String {
        let frame = match self.frame {
            Some((w, h)) => format!("{w}×{h}"),
            None => format!("{} ({}-pixel short side)", self.resolution, self.short_side),
        };
        format!(
            "{} s of {frame} video with audio ({})",
            self.duration_seconds, self.amount
        )
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The clip is what was paid for.
    Matches,
    /// A readable MP4, but not what was paid for.
    Mismatch,
    /// Not a readable MP4 (truncated, another format, a broken index).
    Unreadable,
    /// Read, but nothing to compare with (a job picked up by its id: the request is unknown).
    Unchecked,
}

/// A downloaded clip's check, journaled with the file and shown in every report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClipCheck {
    /// The outcome.
    pub verdict: Verdict,
    /// What the file is, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<Found>,
    /// What was paid for, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_for: Option<PaidFor>,
    /// Each way the clip differs, one sentence each (empty when it matches).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// One sentence for a person: "paid for …, received …" when it does not match.
    pub summary: String,
}

impl ClipCheck {
    /// Whether the clip is not what was paid for (or could not be read).
    pub fn failed(&self) -> bool {
        matches!(self.verdict, Verdict::Mismatch | Verdict::Unreadable)
    }
}

impl Found {
    /// "3.0 s of 1280×720 h264 video with aac audio".
    fn describe(&self) -> String {
        let length = match self.duration_ms {
            Some(ms) => format!("{:.1} s of ", ms as f64 / 1000.0),
            None => "an unknown length of ".into(),
        };
        let video = match &self.video {
            Some(f) => format!("{}×{} {} video", f.width, f.height, f.codec),
            None => "no video track".into(),
        };
        let audio = match &self.audio {
            Some(codec) => format!("with {codec} audio"),
            None => "without audio".into(),
        };
        format!("{length}{video} {audio}")
    }
}

/// Judge what was read (`read`: the file's facts, or why it could not be read) against what
/// was paid for.
pub fn judge(paid_for: Option<PaidFor>, read: Result<Found, ReadError>) -> ClipCheck {
    let found = match read {
        Ok(found) => found,
        // Nothing is known about the clip: the host's failure is not the provider's.
        Err(ReadError::Host(why)) => {
            return ClipCheck {
                verdict: Verdict::Unchecked,
                found: None,
                paid_for,
                summary: format!("could not be checked: {why}"),
                problems: vec![why],
            };
        }
        Err(ReadError::NotMp4(why)) => {
            let summary = match &paid_for {
                Some(p) => format!(
                    "paid for {}, received a file that is not a readable MP4: {why}",
                    p.describe()
                ),
                None => format!("not a readable MP4: {why}"),
            };
            return ClipCheck {
                verdict: Verdict::Unreadable,
                found: None,
                paid_for,
                problems: vec![why],
                summary,
            };
        }
    };
    let Some(paid) = paid_for else {
        return ClipCheck {
            verdict: Verdict::Unchecked,
            summary: format!(
                "{} (the request is unknown here, so not compared)",
                found.describe()
            ),
            found: Some(found),
            paid_for: None,
            problems: vec![],
        };
    };
    let problems = differences(&paid, &found);
    let (verdict, summary) = if problems.is_empty() {
        (
            Verdict::Matches,
            format!("as paid for: {}", found.describe()),
        )
    } else {
        (
            Verdict::Mismatch,
            format!(
                "paid for {}, received {}",
                paid.describe(),
                found.describe()
            ),
        )
    };
    ClipCheck {
        verdict,
        found: Some(found),
        paid_for: Some(paid),
        problems,
        summary,
    }
}

/// How far a frame's aspect ratio may be from the asked one (rounding to even sides).
const RATIO_TOLERANCE: f64 = 0.02;
/// How far a frame's area may be from the equal-area reading's.
const AREA_TOLERANCE: f64 = 0.05;

/// Whether a `width`×`height` frame is what `paid` asked for, or the sentence saying how not.
///
/// The provider documents resolutions, not pixels, and services read them two ways: the
/// short side is the line count (720p at 1:1 is 720×720, [`frame_size`]'s reading), or the
/// area is the 16:9 frame's at any ratio (720p at 1:1 is 960×960). Either is accepted, at the
/// asked ratio within 2%, and a side padded to a multiple of 16 (1088) passes as its line
/// count: a frame is wrong when it is another resolution or another shape, not when it
/// follows the other reading. Without a known ratio (`i2v`: the image's), the size alone.
fn frame_problem(paid: &PaidFor, width: u32, height: u32) -> Option<String> {
    let (w, h) = (f64::from(width), f64::from(height));
    let short = f64::from(paid.short_side);
    let short_side_ok = (w.min(h) - short).abs() <= short * RATIO_TOLERANCE;
    let wide_area = short * short * 16.0 / 9.0;
    let area_ok = ((w * h) - wide_area).abs() <= wide_area * AREA_TOLERANCE;
    let size_ok = short_side_ok || area_ok;
    match paid.frame {
        Some((aw, ah)) if (width, height) == (aw, ah) => None,
        Some((aw, ah)) => {
            let asked = f64::from(aw) / f64::from(ah);
            let shape_ok = h > 0.0 && ((w / h) / asked - 1.0).abs() <= RATIO_TOLERANCE;
            (!(shape_ok && size_ok)).then(|| {
                format!(
                    "frame: {width}×{height}, not {aw}×{ah} ({} at the requested aspect ratio)",
                    paid.resolution
                )
            })
        }
        None => (!size_ok).then(|| {
            format!(
                "frame: {width}×{height} is not {} (a short side of {} or the area of {}×{})",
                paid.resolution,
                paid.short_side,
                paid.short_side * 16 / 9,
                paid.short_side
            )
        }),
    }
}

/// Every way `found` falls short of `paid`, one sentence each.
fn differences(paid: &PaidFor, found: &Found) -> Vec<String> {
    let mut problems = Vec::new();
    let asked_ms = u64::from(paid.duration_seconds) * 1000;
    match found.duration_ms {
        Some(ms) if ms.abs_diff(asked_ms) <= DURATION_TOLERANCE_MS => {}
        Some(ms) => problems.push(format!(
            "duration: {:.1} s, not {} s (± {:.1} s)",
            ms as f64 / 1000.0,
            paid.duration_seconds,
            DURATION_TOLERANCE_MS as f64 / 1000.0
        )),
        None => problems.push("duration: the file does not say how long it is".into()),
    }
    match &found.video {
        None => problems.push("video: the file has no video track".into()),
        Some(f) => {
            if let Some(problem) = frame_problem(paid, f.width, f.height) {
                problems.push(problem);
            }
        }
    }
    if found.audio.is_none() {
        problems.push("audio: the file has no audio track (the model always adds sound)".into());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paid(duration_seconds: u32, frame: Option<(u32, u32)>) -> PaidFor {
        PaidFor {
            duration_seconds,
            resolution: "720p".into(),
            frame,
            short_side: 720,
            amount: "$0.70".into(),
        }
    }

    fn found(duration_ms: u64, width: u32, height: u32, audio: bool) -> Found {
        Found {
            duration_ms: Some(duration_ms),
            video: Some(Frame {
                width,
                height,
                codec: "h264".into(),
            }),
            audio: audio.then(|| "aac".into()),
        }
    }

    #[test]
    fn a_clip_as_paid_for_matches_within_half_a_second() {
        for ms in [4_500, 5_000, 5_021, 5_500] {
            let check = judge(
                Some(paid(5, Some((1280, 720)))),
                Ok(found(ms, 1280, 720, true)),
            );
            assert_eq!(check.verdict, Verdict::Matches, "{ms}: {check:?}");
            assert!(!check.failed());
        }
    }

    #[test]
    fn each_shortfall_is_named_and_the_summary_says_paid_for_and_received() {
        let check = judge(
            Some(paid(5, Some((1280, 720)))),
            Ok(found(3_000, 1920, 1080, false)),
        );
        assert_eq!(check.verdict, Verdict::Mismatch);
        assert!(check.failed());
        assert_eq!(check.problems.len(), 3, "{:?}", check.problems);
        assert_eq!(
            check.summary,
            "paid for 5 s of 1280×720 video with audio ($0.70), received 3.0 s of 1920×1080 \
             h264 video without audio"
        );
        // Just outside the tolerance.
        let late = judge(
            Some(paid(5, Some((1280, 720)))),
            Ok(found(5_501, 1280, 720, true)),
        );
        assert_eq!(late.problems, ["duration: 5.5 s, not 5 s (± 0.5 s)"]);
    }

    #[test]
    fn a_clip_whose_aspect_follows_its_image_is_held_to_its_size_alone() {
        let portrait = judge(Some(paid(5, None)), Ok(found(5_000, 720, 1280, true)));
        assert_eq!(portrait.verdict, Verdict::Matches, "{portrait:?}");
        let small = judge(Some(paid(5, None)), Ok(found(5_000, 640, 360, true)));
        assert_eq!(small.verdict, Verdict::Mismatch);
        assert!(small.problems[0].contains("is not 720p"), "{small:?}");
    }

    #[test]
    fn an_unreadable_file_says_what_was_paid_for() {
        let check = judge(
            Some(paid(5, Some((1280, 720)))),
            Err(ReadError::NotMp4("no movie box".into())),
        );
        assert_eq!(check.verdict, Verdict::Unreadable);
        assert!(check.failed());
        assert!(check.summary.starts_with("paid for 5 s of 1280×720 video with audio ($0.70), received a file that is not a readable MP4"), "{}", check.summary);
    }

    #[test]
    fn either_reading_of_a_resolution_passes_and_another_size_or_shape_does_not() {
        let square = PaidFor {
            frame: Some((720, 720)),
            ..paid(5, None)
        };
        for (w, h) in [(720, 720), (960, 960), (1280, 720 + 8)] {
            let shape = if w == h {
                &square
            } else {
                &paid(5, Some((1280, 720)))
            };
            assert_eq!(frame_problem(shape, w, h), None, "{w}×{h}");
        }
        // Coded 1088 lines for 1080p passes; 1080p for 720p, or a square for 16:9, does not.
        let tall = PaidFor {
            resolution: "1080p".into(),
            frame: Some((1080, 1920)),
            short_side: 1080,
            ..paid(5, None)
        };
        assert_eq!(frame_problem(&tall, 1088, 1920), None);
        assert!(frame_problem(&paid(5, Some((1280, 720))), 1920, 1080).is_some());
        assert!(frame_problem(&paid(5, Some((1280, 720))), 960, 960).is_some());
        assert!(frame_problem(&square, 1280, 720).is_some());
    }

    #[test]
    fn a_host_that_cannot_read_its_own_file_blames_no_one() {
        let check = judge(
            Some(paid(5, Some((1280, 720)))),
            Err(ReadError::Host("disk error".into())),
        );
        assert_eq!(check.verdict, Verdict::Unchecked);
        assert!(!check.failed());
    }

    #[test]
    fn without_a_request_the_facts_are_kept_and_nothing_is_judged() {
        let check = judge(None, Ok(found(3_000, 320, 180, false)));
        assert_eq!(check.verdict, Verdict::Unchecked);
        assert!(!check.failed());
        assert!(check.summary.contains("320×180"));
    }

    #[test]
    fn paid_for_follows_the_normalized_request() {
        let cost = CostEstimate {
            currency: "USD".into(),
            billed_seconds: 5,
            micros_per_second: 180_000,
            total_micros: 900_000,
        };
        let request = VideoRequest {
            resolution: Some("1080p".into()),
            aspect_ratio: Some("9:16".into()),
            duration_seconds: Some(5),
            ..VideoRequest::default()
        };
        let p = PaidFor::of(&request, &cost).unwrap();
        assert_eq!(
            (p.frame, p.short_side, p.amount.as_str()),
            (Some((1080, 1920)), 1080, "$0.90")
        );
        let image = VideoRequest {
            aspect_ratio: None,
            ..request.clone()
        };
        assert_eq!(PaidFor::of(&image, &cost).unwrap().frame, None);
        assert_eq!(PaidFor::of(&VideoRequest::default(), &cost), None);
    }

    #[test]
    fn a_check_round_trips_through_the_journals_json() {
        let check = judge(
            Some(paid(5, Some((1280, 720)))),
            Ok(found(3_000, 1280, 720, true)),
        );
        let text = serde_json::to_string(&check).unwrap();
        assert!(text.contains("\"verdict\":\"mismatch\""), "{text}");
        assert_eq!(serde_json::from_str::<ClipCheck>(&text).unwrap(), check);
    }
}
