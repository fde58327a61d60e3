//! Deliberately wrong clips, for testing that a client checks what it downloads.

use std::time::Duration;

use super::ClipSpec;

/// How a served clip can be wrong. A job gets one from a marker in its prompt (see
/// [`marker`](ClipFault::marker)) or from [`EmulatorConfig::clip_fault`](crate::EmulatorConfig::clip_fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClipFault {
    /// A valid clip about 2 s shorter than asked (never under 1 s).
    Short,
    /// A valid clip in the other resolution's frame size: 1080p's for a 720p request and
    /// 720p's for a 1080p one, at the same aspect ratio.
    OtherResolution,
    /// A valid clip with no audio track.
    NoAudio,
    /// The right clip cut to the first half of its bytes, as an interrupted transfer leaves
    /// it: the index is whole, the samples it points at are not all there.
    Truncated,
    /// Not an MP4 at all: an HTML error page, as a misconfigured storage gateway sends.
    NotMp4,
}

/// How much shorter a [`ClipFault::Short`] clip is, and the least it lasts.
const SHORTENED_BY: Duration = Duration::from_secs(2);
const SHORTEST: Duration = Duration::from_secs(1);

/// What a [`ClipFault::NotMp4`] download serves.
pub(super) const NOT_MP4: &[u8] =
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n\
<body><h1>502 Bad Gateway</h1><p>The object could not be fetched from storage.</p></body></html>\n";

impl ClipFault {
    /// Every fault, in the order prompt markers are looked for.
    pub const ALL: [ClipFault; 5] = [
        ClipFault::Short,
        ClipFault::OtherResolution,
        ClipFault::NoAudio,
        ClipFault::Truncated,
        ClipFault::NotMp4,
    ];

    /// The text that, anywhere in a prompt, makes that job's download this fault:
    /// `[emulator:clip=short]`, `[emulator:clip=other-resolution]`,
    /// `[emulator:clip=no-audio]`, `[emulator:clip=truncated]` or `[emulator:clip=not-mp4]`.
    pub fn marker(self) -> &'static str {
        match self {
            ClipFault::Short => "[emulator:clip=short]",
            ClipFault::OtherResolution => "[emulator:clip=other-resolution]",
            ClipFault::NoAudio => "[emulator:clip=no-audio]",
            ClipFault::Truncated => "[emulator:clip=truncated]",
            ClipFault::NotMp4 => "[emulator:clip=not-mp4]",
        }
    }

    /// The fault whose marker `prompt` contains; the first in [`ALL`](ClipFault::ALL) order
    /// when it holds several.
    pub fn in_prompt(prompt: &str) -> Option<ClipFault> {
        Self::ALL
            .into_iter()
            .find(|fault| prompt.contains(fault.marker()))
    }

    /// The bytes served, under this fault, for a job that asked for `asked`. Deterministic,
    /// like [`ClipSpec::render`].
    pub fn render(self, asked: &ClipSpec) -> Vec<u8> {
        match Output::of(*asked, Some(self)) {
            Output::Whole(spec) => spec.render(),
            Output::FirstHalf(spec) => {
                let mut clip = spec.render();
                clip.truncate(clip.len() / 2);
                clip
            }
            Output::NotMp4 => NOT_MP4.to_vec(),
        }
    }
}

/// What a download serves, in terms the clip cache can share: most faults are just another
/// clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Output {
    /// This clip, whole.
    Whole(ClipSpec),
    /// The first half of this clip's bytes.
    FirstHalf(ClipSpec),
    /// [`NOT_MP4`].
    NotMp4,
}

impl Output {
    /// What is served for `asked` under `fault`.
    pub fn of(asked: ClipSpec, fault: Option<ClipFault>) -> Output {
        let Some(fault) = fault else {
            return Output::Whole(asked);
        };
        match fault {
            ClipFault::Short => Output::Whole(ClipSpec {
                duration: asked
                    .duration
                    .saturating_sub(SHORTENED_BY)
                    .max(SHORTEST)
                    .min(asked.duration),
                ..asked
            }),
            ClipFault::OtherResolution => Output::Whole(other_resolution(asked)),
            ClipFault::NoAudio => Output::Whole(ClipSpec {
                audio: false,
                ..asked
            }),
            ClipFault::Truncated => Output::FirstHalf(asked),
            ClipFault::NotMp4 => Output::NotMp4,
        }
    }
}

/// `spec` scaled to the other resolution: a 720-pixel short side becomes 1080 and any other
/// becomes 720, the long side following at the same aspect ratio.
fn other_resolution(spec: ClipSpec) -> ClipSpec {
    let short = spec.width.min(spec.height).max(1);
    let target: u32 = if short == 720 { 1080 } else { 720 };
    let scale = |side: u32| {
        u32::try_from(u64::from(side) * u64::from(target) / u64::from(short)).unwrap_or(u32::MAX)
    };
    ClipSpec {
        width: scale(spec.width),
        height: scale(spec.height),
        ..spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(width: u32, height: u32, secs: f64) -> ClipSpec {
        ClipSpec {
            width,
            height,
            duration: Duration::from_secs_f64(secs),
            audio: true,
        }
    }

    #[test]
    fn markers_are_found_anywhere_in_a_prompt() {
        for fault in ClipFault::ALL {
            let prompt = format!("a horse {} on a beach", fault.marker());
            assert_eq!(ClipFault::in_prompt(&prompt), Some(fault));
        }
        assert_eq!(ClipFault::in_prompt("a horse [emulator:clip=nope]"), None);
        assert_eq!(ClipFault::in_prompt("[emulator:fail]"), None);
    }

    #[test]
    fn each_fault_changes_what_it_says() {
        let asked = spec(1280, 720, 5.0);
        let whole = |fault| match Output::of(asked, Some(fault)) {
            Output::Whole(spec) => spec,
            other => panic!("{other:?}"),
        };
        assert_eq!(whole(ClipFault::Short).duration, Duration::from_secs(3));
        assert_eq!(
            Output::of(spec(720, 720, 3.0), Some(ClipFault::Short)),
            Output::Whole(spec(720, 720, 1.0)),
            "never under a second"
        );
        assert_eq!(
            Output::of(spec(720, 720, 0.5), Some(ClipFault::Short)),
            Output::Whole(spec(720, 720, 0.5)),
            "never longer than asked"
        );
        let other = whole(ClipFault::OtherResolution);
        assert_eq!((other.width, other.height), (1920, 1080));
        let back = other_resolution(other);
        assert_eq!((back.width, back.height), (1280, 720));
        let portrait = other_resolution(spec(1080, 1440, 3.0));
        assert_eq!((portrait.width, portrait.height), (720, 960));
        assert!(!whole(ClipFault::NoAudio).audio);
        assert_eq!(
            Output::of(asked, Some(ClipFault::Truncated)),
            Output::FirstHalf(asked)
        );
        assert_eq!(Output::of(asked, None), Output::Whole(asked));
    }

    #[test]
    fn wrong_clips_render() {
        let asked = spec(720, 720, 3.0);
        let right = asked.render();
        let truncated = ClipFault::Truncated.render(&asked);
        assert_eq!(truncated, right[..right.len() / 2]);
        assert!(
            ClipFault::NotMp4
                .render(&asked)
                .starts_with(b"<!DOCTYPE html>")
        );
        assert!(ClipFault::NoAudio.render(&asked).len() < right.len());
    }
}
