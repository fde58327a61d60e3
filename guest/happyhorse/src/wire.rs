//! The provider's wire format: the submit body and the job path.
//!
//! # Several images
//!
//! The provider documents `image` as "string (URL or upload)", one for `i2v` and up to 9 for
//! `r2v`, but does **not** publish how several images are sent in one body. This module is
//! the ONE place that decides it: one image is sent as a JSON string (the documented shape),
//! several as a JSON array of strings under the same `image` key (the common convention of
//! comparable APIs). If the provider turns out to expect another shape, only
//! [`submit_body`] changes.

use serde::Serialize;

use crate::limits::{DEFAULT_DURATION_SECONDS, DEFAULT_MODEL, DEFAULT_RESOLUTION};
use crate::validate::RULE_INVALID_FORMAT;
use video_gen_core::model::{FieldViolation, Mode, ValidatedRequest};

/// The submit endpoint (`POST`), relative to the base URL.
pub const SUBMIT_PATH: &str = "/v1/videos/generations";

/// Longest job id accepted by [`job_path`]; far above any real id, low enough to bound a URL.
const MAX_JOB_ID_LEN: usize = 256;

/// The JSON body of `POST /v1/videos/generations` for a validated request.
///
/// Fields that are `None` in the normalized request are omitted (`seed` when not given,
/// `aspect_ratio` in image-to-video, `image` when there are none), so the provider applies
/// its own behaviour for them. The other fields are always sent, so the job does not depend
/// on provider defaults changing; a hand-built request with `None` in them gets the
/// documented defaults.
pub fn submit_body(v: &ValidatedRequest) -> SubmitBody<'_> {
    let r = &v.request;
    SubmitBody {
        model: r.model.as_deref().unwrap_or(DEFAULT_MODEL),
        prompt: &r.prompt,
        mode: r.mode.unwrap_or(Mode::Auto).as_wire(),
        aspect_ratio: r.aspect_ratio.as_deref(),
        resolution: r.resolution.as_deref().unwrap_or(DEFAULT_RESOLUTION),
        duration: r.duration_seconds.unwrap_or(DEFAULT_DURATION_SECONDS),
        seed: r.seed,
        watermark: r.watermark.unwrap_or(false),
        image: match r.images.as_slice() {
            [] => None,
            [one] => Some(Image::One(one)),
            several => Some(Image::Several(several)),
        },
    }
}

/// The submit body, borrowed from the request it was made from: every field the provider
/// gets, in one place, serialized without building a `serde_json::Value` map first (708 B
/// smaller component, BENCHMARKS.md §4).
#[derive(Debug, Serialize)]
pub struct SubmitBody<'a> {
    model: &'a str,
    prompt: &'a str,
    mode: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    aspect_ratio: Option<&'a str>,
    resolution: &'a str,
    duration: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    watermark: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<Image<'a>>,
}

/// The `image` field: a string, or an array (see the module documentation).
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Image<'a> {
    One(&'a str),
    Several(&'a [String]),
}

/// The path of `GET /v1/jobs/{job_id}`.
///
/// The id comes from the network or from a caller's storage, so it is refused unless it is
/// 1 to 256 characters of `[A-Za-z0-9._:-]`: nothing that could add a path segment, a query,
/// a fragment or a header break. `.` and `..` alone are refused for the same reason.
pub fn job_path(job_id: &str) -> Result<String, FieldViolation> {
    let problem = if job_id.is_empty() {
        Some("is empty".to_owned())
    } else if job_id.len() > MAX_JOB_ID_LEN {
        Some(format!(
            "is {} bytes long; the limit is {MAX_JOB_ID_LEN}",
            job_id.len()
        ))
    } else if !job_id.chars().all(is_job_id_char) {
        Some("contains characters other than letters, digits, '.', '_', ':' and '-'".to_owned())
    } else if job_id == "." || job_id == ".." {
        Some("is a relative path segment".to_owned())
    } else {
        None
    };
    match problem {
        None => Ok(format!("/v1/jobs/{job_id}")),
        Some(problem) => Err(FieldViolation {
            field: "job_id".to_owned(),
            rule: RULE_INVALID_FORMAT.to_owned(),
            message: format!(
                "job id {} {problem}; pass the job_id exactly as submit returned it",
                quoted(job_id)
            ),
        }),
    }
}

fn is_job_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')
}

/// The id quoted and escaped for a message, shortened so a huge id cannot flood a log.
fn quoted(id: &str) -> String {
    const SHOWN: usize = 40;
    let mut chars = id.chars();
    let head: String = chars.by_ref().take(SHOWN).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::validate;
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use video_gen_core::model::VideoRequest;

    fn body(r: VideoRequest) -> Value {
        parsed(&validate(&r).expect("valid request"))
    }

    /// The body as the provider parses it.
    fn parsed(v: &ValidatedRequest) -> Value {
        let bytes = serde_json::to_vec(&submit_body(v)).expect("the body serializes");
        serde_json::from_slice(&bytes).expect("the body is JSON")
    }

    fn base() -> VideoRequest {
        VideoRequest {
            prompt: "A horse gallops along a beach at sunset.".into(),
            ..VideoRequest::default()
        }
    }

    #[test]
    fn t2v_body_has_every_default_and_no_seed_or_image() {
        assert_eq!(
            body(base()),
            json!({
                "model": "happyhorse-1-1",
                "prompt": "A horse gallops along a beach at sunset.",
                "mode": "auto",
                "aspect_ratio": "16:9",
                "resolution": "720p",
                "duration": 5,
                "watermark": false,
            })
        );
    }

    #[test]
    fn seed_is_sent_when_given() {
        let b = body(VideoRequest {
            seed: Some(7),
            ..base()
        });
        assert_eq!(b["seed"], json!(7));
    }

    #[test]
    fn i2v_sends_one_image_as_a_string_and_no_aspect_ratio() {
        let b = body(VideoRequest {
            mode: Some(Mode::I2v),
            images: vec!["https://x.test/a.png".into()],
            aspect_ratio: Some("4:3".into()),
            ..base()
        });
        assert_eq!(b["image"], json!("https://x.test/a.png"));
        assert_eq!(b["mode"], json!("i2v"));
        assert!(b.get("aspect_ratio").is_none(), "{b}");
    }

    #[test]
    fn r2v_sends_several_images_as_an_array() {
        let b = body(VideoRequest {
            mode: Some(Mode::R2v),
            images: vec!["https://x.test/a.png".into(), "https://x.test/b.png".into()],
            prompt: "character1 hugs character2".into(),
            resolution: Some("1080p".into()),
            duration_seconds: Some(15),
            watermark: Some(true),
            ..base()
        });
        assert_eq!(
            b,
            json!({
                "model": "happyhorse-1-1",
                "prompt": "character1 hugs character2",
                "mode": "r2v",
                "aspect_ratio": "16:9",
                "resolution": "1080p",
                "duration": 15,
                "watermark": true,
                "image": ["https://x.test/a.png", "https://x.test/b.png"],
            })
        );
    }

    #[test]
    fn r2v_with_one_image_still_sends_a_string() {
        let b = body(VideoRequest {
            mode: Some(Mode::R2v),
            images: vec!["https://x.test/a.png".into()],
            ..base()
        });
        assert_eq!(b["image"], json!("https://x.test/a.png"));
    }

    #[test]
    fn hand_built_request_gets_documented_defaults() {
        let v = ValidatedRequest {
            request: VideoRequest {
                prompt: "p".into(),
                ..VideoRequest::default()
            },
            warnings: vec![],
        };
        let b = parsed(&v);
        assert_eq!(b["model"], json!("happyhorse-1-1"));
        assert_eq!(b["duration"], json!(5));
        assert!(b.get("aspect_ratio").is_none());
    }

    #[test]
    fn job_path_accepts_plain_ids() {
        assert_eq!(job_path("job_123").unwrap(), "/v1/jobs/job_123");
        assert_eq!(job_path("a.b:c-D_9").unwrap(), "/v1/jobs/a.b:c-D_9");
        assert!(job_path(&"x".repeat(256)).is_ok());
    }

    #[test]
    fn job_path_refuses_ids_that_could_change_the_url() {
        for bad in [
            "",
            "..",
            ".",
            "a/b",
            "a?b=1",
            "a#b",
            "a b",
            "a%2Fb",
            "a\r\nX: y",
            "é",
            &"x".repeat(257),
        ] {
            let e = job_path(bad).unwrap_err();
            assert_eq!(
                (e.field.as_str(), e.rule.as_str()),
                ("job_id", "invalid-format"),
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn job_path_only_ever_adds_one_safe_segment(id in ".{0,300}") {
            if let Ok(path) = job_path(&id) {
                let tail = path.strip_prefix("/v1/jobs/").unwrap();
                prop_assert_eq!(tail, id.as_str());
                prop_assert!(tail.chars().all(is_job_id_char));
                prop_assert!(!tail.is_empty() && tail.len() <= MAX_JOB_ID_LEN);
            }
        }
    }
}
