//! The provider's documented constants, in one place.
//!
//! Every value here is restated from the provider's published API description of
//! HappyHorse 1.1 on EmpirioLabs (`shared/api/happyhorse-1.1.md` in this project). When the
//! provider changes a limit, this is the only file that should need to change.

use video_gen_core::model::ResolutionRate;

/// The model id sent when the caller names none ("Model id: `happyhorse-1-1`").
pub const DEFAULT_MODEL: &str = "happyhorse-1-1";

/// The provider's public endpoint ("Base URL" under *Transport*).
pub const DEFAULT_BASE_URL: &str = "https://api.empiriolabs.ai";

/// The environment variable holding the API key; the name the provider's own examples use.
pub const API_KEY_ENV: &str = "EMPIRIOLABS_API_KEY";

/// Longest prompt, in Unicode scalar values (`prompt`: "up to 2,500 characters").
pub const MAX_PROMPT_CHARS: usize = 2500;

/// Shortest clip, in seconds (`duration`: "3 to 15").
pub const MIN_DURATION_SECONDS: u32 = 3;

/// Longest clip, in seconds (`duration`: "3 to 15").
pub const MAX_DURATION_SECONDS: u32 = 15;

/// Clip length when the caller gives none (`duration` default `5`).
pub const DEFAULT_DURATION_SECONDS: u32 = 5;

/// Largest seed (`seed`: "0 to 2147483647"); the smallest is 0.
pub const MAX_SEED: i64 = 2_147_483_647;

/// Most reference images in one request (`r2v`: "up to 9 reference images").
pub const MAX_REFERENCE_IMAGES: usize = 9;

/// Accepted aspect ratios (`aspect_ratio` values), in the provider's order.
pub const ASPECT_RATIOS: &[&str] = &["16:9", "9:16", "1:1", "4:3", "3:4"];

/// Aspect ratio when the caller gives none (`aspect_ratio` default `16:9`).
pub const DEFAULT_ASPECT_RATIO: &str = "16:9";

/// Accepted resolutions (`resolution` values).
pub const RESOLUTIONS: &[&str] = &["720p", "1080p"];

/// Resolution when the caller gives none (`resolution` default `720p`).
pub const DEFAULT_RESOLUTION: &str = "720p";

/// The frame a clip of `resolution` at `aspect_ratio` has, as `(width, height)` in pixels:
/// the short side is the resolution's line count (720 or 1080) and the aspect ratio sets the
/// long side (720p at 16:9 is 1280×720, 1080p at 3:4 is 1080×1440). `None` for a resolution
/// or ratio outside the lists.
///
/// The provider documents resolutions and ratios, not pixels: this is the reading every
/// video service shares (720p means 720 lines on the short side), what the host checks a
/// delivered clip against and what the emulator renders.
pub fn frame_size(resolution: &str, aspect_ratio: &str) -> Option<(u32, u32)> {
    let short = short_side(resolution)?;
    let (long_part, short_part, landscape) = match aspect_ratio {
        "16:9" => (16, 9, true),
        "9:16" => (16, 9, false),
        "4:3" => (4, 3, true),
        "3:4" => (4, 3, false),
        "1:1" => (1, 1, true),
        _ => return None,
    };
    let long = short * long_part / short_part;
    Some(if landscape {
        (long, short)
    } else {
        (short, long)
    })
}

/// The short side of a clip at `resolution` (`720p` → 720), or `None` for a resolution
/// outside [`RESOLUTIONS`]. A clip whose aspect follows a source image (`i2v`) can be checked
/// by this side alone.
pub fn short_side(resolution: &str) -> Option<u32> {
    match resolution {
        "720p" => Some(720),
        "1080p" => Some(1080),
        _ => None,
    }
}

/// The currency of the provider's price list ("$0.14 per second").
pub const CURRENCY: &str = "USD";

/// The provider's published rate card, in micro-dollars per second of output video
/// (*Pricing*: 720p $0.14/s, 1080p $0.18/s).
///
/// The provider says its live rate card is what it charges, so these are defaults a caller
/// may override (see [`crate::cost::estimate_cost`]), not truths.
pub fn default_rates() -> Vec<ResolutionRate> {
    vec![
        ResolutionRate {
            resolution: "720p".to_owned(),
            micros_per_second: 140_000,
        },
        ResolutionRate {
            resolution: "1080p".to_owned(),
            micros_per_second: 180_000,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_members_of_their_lists() {
        assert!(ASPECT_RATIOS.contains(&DEFAULT_ASPECT_RATIO));
        assert!(RESOLUTIONS.contains(&DEFAULT_RESOLUTION));
        assert!((MIN_DURATION_SECONDS..=MAX_DURATION_SECONDS).contains(&DEFAULT_DURATION_SECONDS));
    }

    #[test]
    fn frame_sizes_follow_the_short_side_and_the_ratio() {
        let table = [
            ("720p", "16:9", (1280, 720)),
            ("720p", "9:16", (720, 1280)),
            ("720p", "1:1", (720, 720)),
            ("720p", "4:3", (960, 720)),
            ("720p", "3:4", (720, 960)),
            ("1080p", "16:9", (1920, 1080)),
            ("1080p", "9:16", (1080, 1920)),
            ("1080p", "1:1", (1080, 1080)),
            ("1080p", "4:3", (1440, 1080)),
            ("1080p", "3:4", (1080, 1440)),
        ];
        for (resolution, ratio, size) in table {
            assert_eq!(
                frame_size(resolution, ratio),
                Some(size),
                "{resolution} {ratio}"
            );
        }
        // Every listed pair has a size; nothing else does.
        for r in RESOLUTIONS {
            for a in ASPECT_RATIOS {
                assert!(frame_size(r, a).is_some());
            }
        }
        assert_eq!(frame_size("480p", "16:9"), None);
        assert_eq!(frame_size("720p", "21:9"), None);
    }

    #[test]
    fn every_resolution_has_exactly_one_default_rate() {
        let rates = default_rates();
        assert_eq!(rates.len(), RESOLUTIONS.len());
        for r in RESOLUTIONS {
            assert_eq!(rates.iter().filter(|x| x.resolution == *r).count(), 1);
        }
    }
}
