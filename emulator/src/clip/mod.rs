//! The MP4 clips a completed job serves, made at run time to match what the job asked for.
//!
//! A clip is real, playable H.264 + AAC in MP4, with no external program involved: a flat
//! mid-gray picture (one IDR frame, then frames that repeat it) at [`FRAMES_PER_SECOND`],
//! silent mono AAC-LC at 48 kHz, and an index (`moov`) ahead of the samples. Its frame size
//! follows [`frame_size`] and its duration is the requested one to the 90 kHz tick, so a
//! client that checks its downloads (size, duration, an audio track) has something true to
//! check against. [`ClipFault`] makes the deliberately wrong ones.
//!
//! The pieces, each after its standard: [`h264`] the video bitstream, [`aac`] the sound,
//! [`mux`] the container, [`bits`] the bit writer the first two share.

mod aac;
mod bits;
mod fault;
mod h264;
mod mux;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;

pub use fault::ClipFault;
use fault::{NOT_MP4, Output};

use crate::validation::{GenerationRequest, Mode, Resolution};

/// Video frames per second: the film rate generation models output. The frames after the
/// first cost a few bytes each, so a real rate costs next to nothing.
pub const FRAMES_PER_SECOND: u32 = 24;

/// Ticks per second of the movie and video timelines: MPEG's 90 kHz clock, fine enough for
/// any requested duration to land within a tick (a frame at 24 fps is 3750 ticks).
const TIMESCALE: u32 = 90_000;

/// The range [`ClipSpec::render`] keeps sides in: at least a macroblock, at most what H.264
/// level 6 decodes.
const SIDES: (u32, u32) = (16, 4096);
/// The range it keeps durations in: the emulator asks for 1–15 s, and a public API must not
/// let a careless caller allocate gigabytes.
const DURATIONS: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(600));

/// The output frame size, `(width, height)` in pixels, for an API `resolution` (`"720p"`,
/// `"1080p"`) and `aspect_ratio` (`"16:9"`, `"9:16"`, `"1:1"`, `"4:3"`, `"3:4"`); `None` for
/// any other value.
///
/// The resolution is the short side; the aspect ratio sets the long one:
///
/// | aspect | 720p | 1080p |
/// | --- | --- | --- |
/// | 16:9 | 1280×720 | 1920×1080 |
/// | 9:16 | 720×1280 | 1080×1920 |
/// | 1:1 | 720×720 | 1080×1080 |
/// | 4:3 | 960×720 | 1440×1080 |
/// | 3:4 | 720×960 | 1080×1440 |
///
/// For `i2v`, and `auto` with exactly one image, the API says the aspect ratio follows the
/// source image; the emulator does not read images and uses 16:9 there.
///
/// The host's expectation (`happyhorse_core::limits::frame_size`) is written separately on
/// purpose, as the emulator's validation is: one mistake shared by both would hide from the
/// tests that compare them (the pipeline's clip tests, and Chromium playing the clips).
pub fn frame_size(resolution: &str, aspect_ratio: &str) -> Option<(u32, u32)> {
    let short = match resolution {
        "720p" => 720,
        "1080p" => 1080,
        _ => return None,
    };
    sides(short, aspect_ratio)
}

fn sides(short: u32, aspect_ratio: &str) -> Option<(u32, u32)> {
    let (long_to_short, landscape) = match aspect_ratio {
        "16:9" => ((16, 9), true),
        "9:16" => ((16, 9), false),
        "1:1" => ((1, 1), true),
        "4:3" => ((4, 3), true),
        "3:4" => ((4, 3), false),
        _ => return None,
    };
    let long = short * long_to_short.0 / long_to_short.1;
    Some(if landscape {
        (long, short)
    } else {
        (short, long)
    })
}

/// What a clip is: the frame size, how long it lasts, and whether it has sound. Two equal
/// specs render the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClipSpec {
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// The video track's (and the movie's) duration.
    pub duration: Duration,
    /// Whether there is an audio track (silent AAC).
    pub audio: bool,
}

impl ClipSpec {
    /// The clip a completed job asked for, as the emulator serves it (see [`frame_size`]).
    pub(crate) fn for_request(request: &GenerationRequest) -> ClipSpec {
        let short = match request.resolution {
            Resolution::P720 => 720,
            Resolution::P1080 => 1080,
        };
        let follows_image =
            request.mode == Mode::I2v || (request.mode == Mode::Auto && request.images.len() == 1);
        let aspect_ratio = if follows_image {
            "16:9"
        } else {
            request.aspect_ratio.as_str()
        };
        let (width, height) = sides(short, aspect_ratio).unwrap_or((short * 16 / 9, short));
        ClipSpec {
            width,
            height,
            // Validation keeps it to 3–15 s; the fallback is the API's default.
            duration: Duration::try_from_secs_f64(request.duration)
                .unwrap_or(Duration::from_secs(5)),
            audio: true,
        }
    }

    /// The MP4 file. Sides are kept to 16–4096 pixels and rounded up to even (4:2:0 video
    /// crops in pairs of pixels), the duration to 1 ms–10 min; within those ranges the file
    /// says exactly what the spec does.
    pub fn render(&self) -> Vec<u8> {
        let even = |side: u32| side.clamp(SIDES.0, SIDES.1).next_multiple_of(2);
        let (width, height) = (even(self.width), even(self.height));
        let duration = self.duration.clamp(DURATIONS.0, DURATIONS.1);
        let ticks = ticks(duration, TIMESCALE).max(1);

        let mut tracks = vec![video_track(width, height, ticks)];
        if self.audio {
            tracks.push(audio_track(duration, ticks));
        }
        mux::mp4(TIMESCALE, &tracks)
    }
}

/// `duration` in ticks of `timescale`, rounded to the nearest.
fn ticks(duration: Duration, timescale: u32) -> u32 {
    let ticks = (duration.as_nanos() * u128::from(timescale) + 500_000_000) / 1_000_000_000;
    u32::try_from(ticks).unwrap_or(u32::MAX)
}

/// `ticks` of video at [`FRAMES_PER_SECOND`]: the IDR picture, then skipped pictures. The
/// last frame is cut short so the track lasts exactly `ticks`, fractional seconds included.
fn video_track(width: u32, height: u32, ticks: u32) -> mux::Track {
    let picture = h264::Picture::new(width, height);
    let frame = TIMESCALE / FRAMES_PER_SECOND;
    let frames = ticks.div_ceil(frame);
    let samples = (0..frames)
        .map(|index| {
            let nal = if index == 0 {
                picture.idr()
            } else {
                picture.skipped(index)
            };
            mux::Sample {
                data: length_prefixed(&nal),
                duration: frame.min(ticks - index * frame),
                sync: index == 0,
            }
        })
        .collect();
    mux::Track {
        codec: mux::Codec::Avc {
            width,
            height,
            sps: picture.sps(),
            pps: picture.pps(),
        },
        timescale: TIMESCALE,
        samples,
        presented: ticks,
    }
}

/// Silent AAC frames covering `duration` (the last one overhangs it by under 1024 samples,
/// which the track's edit list trims); presented for `ticks` of the movie timeline.
fn audio_track(duration: Duration, ticks: u32) -> mux::Track {
    let pcm_samples = duration
        .as_nanos()
        .saturating_mul(aac::SAMPLE_RATE.into())
        .div_ceil(1_000_000_000);
    let frames = pcm_samples.div_ceil(aac::SAMPLES_PER_FRAME.into()).max(1);
    let frame = mux::Sample {
        data: aac::SILENT_FRAME.to_vec(),
        duration: aac::SAMPLES_PER_FRAME,
        sync: true,
    };
    mux::Track {
        codec: mux::Codec::Aac {
            sample_rate: aac::SAMPLE_RATE,
            channels: aac::CHANNELS,
            config: aac::audio_specific_config(),
        },
        timescale: aac::SAMPLE_RATE,
        samples: vec![frame; usize::try_from(frames).unwrap_or(0)],
        presented: ticks,
    }
}

/// A NAL unit as an MP4 sample holds it: after its length in 4 bytes (the `avcC` says 4).
fn length_prefixed(nal: &[u8]) -> Vec<u8> {
    let len = u32::try_from(nal.len()).unwrap_or(u32::MAX);
    [&len.to_be_bytes()[..], nal].concat()
}

/// Rendered clips, shared by every download: each spec is rendered once (a few milliseconds)
/// and then served from memory.
#[derive(Debug, Default)]
pub(crate) struct ClipCache {
    clips: Mutex<HashMap<ClipSpec, Bytes>>,
}

/// How many clips the cache holds: requests can vary the duration freely, so it is bounded;
/// a tenth of a megabyte each at most.
const CACHE_CAPACITY: usize = 64;

impl ClipCache {
    /// The bytes served for a job that asked for `asked`, spoiled by `fault` if any.
    pub fn serve(&self, asked: ClipSpec, fault: Option<ClipFault>) -> Bytes {
        match Output::of(asked, fault) {
            Output::Whole(spec) => self.clip(spec),
            Output::FirstHalf(spec) => {
                let clip = self.clip(spec);
                clip.slice(..clip.len() / 2)
            }
            Output::NotMp4 => Bytes::from_static(NOT_MP4),
        }
    }

    fn clip(&self, spec: ClipSpec) -> Bytes {
        if let Some(clip) = self.lock().get(&spec) {
            return clip.clone();
        }
        // Rendered without the lock, so one download never waits on another's render; two
        // racing for the same spec render it twice, identically.
        let clip = Bytes::from(spec.render());
        let mut clips = self.lock();
        if clips.len() >= CACHE_CAPACITY
            && let Some(evicted) = clips.keys().next().copied()
        {
            clips.remove(&evicted);
        }
        clips.insert(spec, clip.clone());
        clip
    }

    /// The map, even if a panic poisoned the lock: every update leaves it consistent.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClipSpec, Bytes>> {
        self.clips
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes_follow_the_short_side() {
        assert_eq!(frame_size("720p", "16:9"), Some((1280, 720)));
        assert_eq!(frame_size("1080p", "3:4"), Some((1080, 1440)));
        assert_eq!(frame_size("480p", "16:9"), None);
        assert_eq!(frame_size("720p", "21:9"), None);
    }

    #[test]
    fn requests_map_to_specs() {
        let mut request = crate::validation::parse_submit(
            br#"{"model":"happyhorse-1-1","prompt":"p","resolution":"1080p","aspect_ratio":"9:16","duration":7.5}"#,
        )
        .unwrap();
        let spec = ClipSpec::for_request(&request);
        assert_eq!((spec.width, spec.height), (1080, 1920));
        assert_eq!(spec.duration, Duration::from_millis(7500));
        assert!(spec.audio);
        request.images = vec!["https://example.com/a.png".into()];
        let one_image = ClipSpec::for_request(&request);
        assert_eq!(
            (one_image.width, one_image.height),
            (1920, 1080),
            "auto + 1 image"
        );
        request.images.push("https://example.com/b.png".into());
        let two = ClipSpec::for_request(&request);
        assert_eq!(
            (two.width, two.height),
            (1080, 1920),
            "auto + 2 images: as asked"
        );
    }

    #[test]
    fn video_lasts_exactly_the_duration() {
        let track = video_track(64, 64, ticks(Duration::from_millis(3_333), TIMESCALE));
        let total: u32 = track.samples.iter().map(|s| s.duration).sum();
        assert_eq!(total, 299_970);
        assert_eq!(track.samples.len(), 80, "79 whole frames and a short one");
        assert_eq!(track.samples.last().unwrap().duration, 299_970 - 79 * 3750);
        assert!(track.samples[0].sync && !track.samples[1].sync);
    }

    #[test]
    fn audio_covers_the_duration() {
        let track = audio_track(Duration::from_secs(3), 270_000);
        // 144 000 samples need 140.625 frames: 141.
        assert_eq!(track.samples.len(), 141);
        assert_eq!(audio_track(Duration::ZERO, 0).samples.len(), 1);
    }

    #[test]
    fn rendering_is_deterministic_and_tolerates_odd_specs() {
        let spec = ClipSpec {
            width: 1280,
            height: 720,
            duration: Duration::from_secs(3),
            audio: true,
        };
        assert_eq!(spec.render(), spec.render());
        for odd in [
            ClipSpec {
                width: 0,
                height: u32::MAX,
                duration: Duration::ZERO,
                audio: true,
            },
            ClipSpec {
                width: 33,
                height: 17,
                duration: Duration::MAX,
                audio: false,
            },
        ] {
            assert_eq!(&odd.render()[4..8], b"ftyp");
        }
    }

    #[test]
    fn the_cache_serves_the_same_bytes_and_stays_bounded() {
        let cache = ClipCache::default();
        let spec = |ms| ClipSpec {
            width: 16,
            height: 16,
            duration: Duration::from_millis(ms),
            audio: true,
        };
        let first = cache.serve(spec(3_000), None);
        assert_eq!(first, cache.serve(spec(3_000), None));
        assert_eq!(first, Bytes::from(spec(3_000).render()));
        let half = cache.serve(spec(3_000), Some(ClipFault::Truncated));
        assert_eq!(half, first.slice(..first.len() / 2));
        for ms in 0..(CACHE_CAPACITY as u64 + 10) {
            cache.serve(spec(1_000 + ms), None);
        }
        assert_eq!(cache.lock().len(), CACHE_CAPACITY);
    }
}
