//! `validate`'s tests: every rule at its boundary, the defaults and warnings of the request
//! it returns, and a property test that any request is either refused or kept as promised.

use super::*;
use proptest::prelude::*;

const URL: &str = "https://example.com/horse.png";

fn req(prompt: &str) -> VideoRequest {
    VideoRequest {
        prompt: prompt.to_owned(),
        ..VideoRequest::default()
    }
}

fn images(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("https://example.com/{i}.png"))
        .collect()
}

fn with(f: impl FnOnce(&mut VideoRequest)) -> VideoRequest {
    let mut r = req("A horse gallops along a beach at sunset.");
    f(&mut r);
    r
}

fn rules(result: &Result<ValidatedRequest, Vec<FieldViolation>>) -> Vec<(String, String)> {
    match result {
        Ok(_) => Vec::new(),
        Err(v) => v
            .iter()
            .map(|x| (x.field.clone(), x.rule.clone()))
            .collect(),
    }
}

/// A named request and the `(field, rule)` pairs it must break (none: accepted).
type Case = (
    &'static str,
    VideoRequest,
    Vec<(&'static str, &'static str)>,
);

/// Every rule at its boundary: the expected `(field, rule)` list, empty when accepted.
#[test]
fn boundary_table() {
    let horse = '🐎'; // four bytes, one character: a byte count would refuse 2,500 of them
    let long_ok: String = std::iter::repeat_n(horse, MAX_PROMPT_CHARS).collect();
    let long_bad: String = std::iter::repeat_n('é', MAX_PROMPT_CHARS + 1).collect();
    assert!(long_ok.len() > MAX_PROMPT_CHARS);

    let table: Vec<Case> = vec![
        ("defaults", with(|_| {}), vec![]),
        (
            "duration 2",
            with(|r| r.duration_seconds = Some(2)),
            vec![("duration", RULE_OUT_OF_RANGE)],
        ),
        ("duration 3", with(|r| r.duration_seconds = Some(3)), vec![]),
        (
            "duration 15",
            with(|r| r.duration_seconds = Some(15)),
            vec![],
        ),
        (
            "duration 16",
            with(|r| r.duration_seconds = Some(16)),
            vec![("duration", RULE_OUT_OF_RANGE)],
        ),
        (
            "duration 0",
            with(|r| r.duration_seconds = Some(0)),
            vec![("duration", RULE_OUT_OF_RANGE)],
        ),
        ("prompt 2500 multi-byte", req(&long_ok), vec![]),
        (
            "prompt 2501 multi-byte",
            req(&long_bad),
            vec![("prompt", RULE_TOO_LONG)],
        ),
        ("prompt empty", req(""), vec![("prompt", RULE_REQUIRED)]),
        (
            "prompt blank",
            req(" \n\t "),
            vec![("prompt", RULE_REQUIRED)],
        ),
        (
            "i2v 0 images",
            with(|r| r.mode = Some(Mode::I2v)),
            vec![("image", RULE_REQUIRED)],
        ),
        (
            "i2v 1 image",
            with(|r| {
                r.mode = Some(Mode::I2v);
                r.images = images(1)
            }),
            vec![],
        ),
        (
            "i2v 2 images",
            with(|r| {
                r.mode = Some(Mode::I2v);
                r.images = images(2)
            }),
            vec![("image", RULE_TOO_MANY)],
        ),
        (
            "r2v 0 images",
            with(|r| r.mode = Some(Mode::R2v)),
            vec![("image", RULE_REQUIRED)],
        ),
        (
            "r2v 1 image",
            with(|r| {
                r.mode = Some(Mode::R2v);
                r.images = images(1)
            }),
            vec![],
        ),
        (
            "r2v 9 images",
            with(|r| {
                r.mode = Some(Mode::R2v);
                r.images = images(9)
            }),
            vec![],
        ),
        (
            "r2v 10 images",
            with(|r| {
                r.mode = Some(Mode::R2v);
                r.images = images(10)
            }),
            vec![("image", RULE_TOO_MANY)],
        ),
        ("auto 9 images", with(|r| r.images = images(9)), vec![]),
        (
            "auto 10 images",
            with(|r| r.images = images(10)),
            vec![("image", RULE_TOO_MANY)],
        ),
        (
            "t2v with image",
            with(|r| {
                r.mode = Some(Mode::T2v);
                r.images = images(1)
            }),
            vec![("image", RULE_NOT_ALLOWED)],
        ),
        ("t2v no image", with(|r| r.mode = Some(Mode::T2v)), vec![]),
        (
            "r2v character10 of 9",
            with(|r| {
                r.mode = Some(Mode::R2v);
                r.images = images(9);
                r.prompt = "character1 meets Character10".into()
            }),
            vec![("prompt", RULE_UNKNOWN_REFERENCE)],
        ),
        (
            "r2v character9 of 9",
            with(|r| {
                r.mode = Some(Mode::R2v);
                r.images = images(9);
                r.prompt = "character1 meets CHARACTER9".into()
            }),
            vec![],
        ),
        (
            "auto r2v character3 of 2",
            with(|r| {
                r.images = images(2);
                r.prompt = "character3 waves".into()
            }),
            vec![("prompt", RULE_UNKNOWN_REFERENCE)],
        ),
        (
            "r2v character0",
            with(|r| {
                r.images = images(2);
                r.prompt = "character0 waves".into()
            }),
            vec![("prompt", RULE_UNKNOWN_REFERENCE)],
        ),
        (
            "i2v ignores character names",
            with(|r| {
                r.images = images(1);
                r.prompt = "character7 waves".into()
            }),
            vec![],
        ),
        (
            "seed -1",
            with(|r| r.seed = Some(-1)),
            vec![("seed", RULE_OUT_OF_RANGE)],
        ),
        ("seed 0", with(|r| r.seed = Some(0)), vec![]),
        ("seed max", with(|r| r.seed = Some(2_147_483_647)), vec![]),
        (
            "seed max+1",
            with(|r| r.seed = Some(2_147_483_648)),
            vec![("seed", RULE_OUT_OF_RANGE)],
        ),
        (
            "aspect for i2v",
            with(|r| {
                r.images = images(1);
                r.aspect_ratio = Some("4:3".into())
            }),
            vec![],
        ),
        (
            "aspect bad",
            with(|r| r.aspect_ratio = Some("21:9".into())),
            vec![("aspect_ratio", RULE_ONE_OF)],
        ),
        (
            "aspect bad for i2v",
            with(|r| {
                r.images = images(1);
                r.aspect_ratio = Some("2:1".into())
            }),
            vec![("aspect_ratio", RULE_ONE_OF)],
        ),
        (
            "resolution 1080p",
            with(|r| r.resolution = Some("1080p".into())),
            vec![],
        ),
        (
            "resolution 4k",
            with(|r| r.resolution = Some("4k".into())),
            vec![("resolution", RULE_ONE_OF)],
        ),
        (
            "model other",
            with(|r| r.model = Some("happyhorse-2.0_beta".into())),
            vec![],
        ),
        (
            "model blank",
            with(|r| r.model = Some("  ".into())),
            vec![("model", RULE_REQUIRED)],
        ),
        (
            "model empty",
            with(|r| r.model = Some(String::new())),
            vec![("model", RULE_REQUIRED)],
        ),
        (
            "model bad",
            with(|r| r.model = Some("a/b?c".into())),
            vec![("model", RULE_INVALID_FORMAT)],
        ),
        (
            "image ftp",
            with(|r| r.images = vec!["ftp://x/y.png".into()]),
            vec![("image[0]", RULE_INVALID_FORMAT)],
        ),
        (
            "image no host",
            with(|r| r.images = vec!["https:///y.png".into()]),
            vec![("image[0]", RULE_INVALID_FORMAT)],
        ),
        (
            "image space",
            with(|r| r.images = vec!["https://x/a b.png".into()]),
            vec![("image[0]", RULE_INVALID_FORMAT)],
        ),
        (
            "image data ok",
            with(|r| r.images = vec!["data:image/png;base64,iVBORw0KGgo=".into()]),
            vec![],
        ),
        (
            "image data empty",
            with(|r| r.images = vec!["data:image/png;base64,".into()]),
            vec![("image[0]", RULE_INVALID_FORMAT)],
        ),
        (
            "image data not image",
            with(|r| r.images = vec!["data:text/plain;base64,aGk=".into()]),
            vec![("image[0]", RULE_INVALID_FORMAT)],
        ),
        (
            "image data not b64",
            with(|r| r.images = vec!["data:image/png,abc".into()]),
            vec![("image[0]", RULE_INVALID_FORMAT)],
        ),
        (
            "second image bad",
            with(|r| r.images = vec![URL.into(), "nope".into(), "http://[::1]:8080/a.png".into()]),
            vec![("image[1]", RULE_INVALID_FORMAT)],
        ),
        (
            "several faults",
            VideoRequest {
                model: Some("bad model".into()),
                prompt: String::new(),
                mode: Some(Mode::I2v),
                images: vec![],
                aspect_ratio: Some("5:4".into()),
                resolution: Some("480p".into()),
                duration_seconds: Some(16),
                seed: Some(-1),
                watermark: None,
            },
            vec![
                ("prompt", RULE_REQUIRED),
                ("model", RULE_INVALID_FORMAT),
                ("image", RULE_REQUIRED),
                ("aspect_ratio", RULE_ONE_OF),
                ("resolution", RULE_ONE_OF),
                ("duration", RULE_OUT_OF_RANGE),
                ("seed", RULE_OUT_OF_RANGE),
            ],
        ),
    ];
    for (name, request, expected) in table {
        let result = validate(&request);
        let expected: Vec<(String, String)> = expected
            .into_iter()
            .map(|(f, r)| (f.to_owned(), r.to_owned()))
            .collect();
        assert_eq!(rules(&result), expected, "case {name}: {result:?}");
    }
}

#[test]
fn defaults_are_filled_in() {
    let v = validate(&req("a horse")).unwrap();
    let r = v.request;
    assert_eq!(r.model.as_deref(), Some(DEFAULT_MODEL));
    assert_eq!(r.mode, Some(Mode::Auto));
    assert_eq!(r.aspect_ratio.as_deref(), Some("16:9"));
    assert_eq!(r.resolution.as_deref(), Some("720p"));
    assert_eq!(r.duration_seconds, Some(5));
    assert_eq!(r.seed, None);
    assert_eq!(r.watermark, Some(false));
    assert!(v.warnings.is_empty());
}

#[test]
fn explicit_mode_is_kept() {
    let v = validate(&with(|r| r.mode = Some(Mode::Auto))).unwrap();
    assert_eq!(v.request.mode, Some(Mode::Auto));
    let v = validate(&with(|r| r.mode = Some(Mode::T2v))).unwrap();
    assert_eq!(v.request.mode, Some(Mode::T2v));
}

#[test]
fn aspect_ratio_for_i2v_is_dropped_with_a_warning() {
    let v = validate(&with(|r| {
        r.images = images(1);
        r.aspect_ratio = Some("4:3".into());
    }))
    .unwrap();
    assert_eq!(v.request.aspect_ratio, None);
    assert_eq!(v.warnings.len(), 1);
    assert_eq!(v.warnings[0].field, "aspect_ratio");
    assert!(
        v.warnings[0].message.contains("4:3 was not sent"),
        "{:?}",
        v.warnings
    );
}

#[test]
fn i2v_without_aspect_ratio_has_none_and_no_warning() {
    let v = validate(&with(|r| r.images = images(1))).unwrap();
    assert_eq!(v.request.aspect_ratio, None);
    assert!(v.warnings.is_empty());
}

#[test]
fn r2v_gets_the_default_aspect_ratio() {
    let v = validate(&with(|r| r.images = images(3))).unwrap();
    assert_eq!(
        v.request.aspect_ratio.as_deref(),
        Some(DEFAULT_ASPECT_RATIO)
    );
}

#[test]
fn other_model_is_kept_with_a_warning() {
    let v = validate(&with(|r| r.model = Some("happyhorse-2".into()))).unwrap();
    assert_eq!(v.request.model.as_deref(), Some("happyhorse-2"));
    assert_eq!(v.warnings.len(), 1);
    assert_eq!(v.warnings[0].field, "model");
    assert!(
        v.warnings[0]
            .message
            .contains("rules checked are HappyHorse 1.1's")
    );
}

#[test]
fn given_seed_and_watermark_are_kept() {
    let v = validate(&with(|r| {
        r.seed = Some(42);
        r.watermark = Some(true);
    }))
    .unwrap();
    assert_eq!(v.request.seed, Some(42));
    assert_eq!(v.request.watermark, Some(true));
}

#[test]
fn messages_say_what_was_given_and_what_is_allowed() {
    let errs = validate(&with(|r| r.duration_seconds = Some(16))).unwrap_err();
    assert_eq!(
        errs[0].message,
        "duration is 16 s; HappyHorse 1.1 accepts 3 to 15 s"
    );
    let errs = validate(&with(|r| r.aspect_ratio = Some("21:9".into()))).unwrap_err();
    assert!(
        errs[0].message.contains("16:9, 9:16, 1:1, 4:3 or 3:4"),
        "{}",
        errs[0].message
    );
    let errs = validate(&with(|r| {
        r.images = images(9);
        r.prompt = "character10".into();
    }))
    .unwrap_err();
    assert!(
        errs[0].message.contains("character10"),
        "{}",
        errs[0].message
    );
    assert!(
        errs[0].message.contains("9 reference images"),
        "{}",
        errs[0].message
    );
}

#[test]
fn each_unknown_reference_is_reported_once() {
    let errs = validate(&with(|r| {
        r.images = images(2);
        r.prompt = "character3 and Character3 and character4, then character2".into();
    }))
    .unwrap_err();
    let names: Vec<_> = errs.iter().map(|e| e.message.clone()).collect();
    assert_eq!(errs.len(), 2, "{names:?}");
}

#[test]
fn huge_reference_number_is_out_of_range_not_an_overflow() {
    let errs = validate(&with(|r| {
        r.images = images(2);
        r.prompt = format!("character{}", "9".repeat(40));
    }))
    .unwrap_err();
    assert_eq!(errs[0].rule, RULE_UNKNOWN_REFERENCE);
}

#[test]
fn huge_image_value_is_not_echoed_in_full() {
    let big = format!("data:image/png;base64,{}", "A ".repeat(100_000));
    let errs = validate(&with(|r| r.images = vec![big.clone()])).unwrap_err();
    assert!(errs[0].message.len() < 400, "{}", errs[0].message.len());
}

#[test]
fn effective_mode_follows_image_count() {
    assert_eq!(effective_mode(None, 0), Mode::T2v);
    assert_eq!(effective_mode(Some(Mode::Auto), 1), Mode::I2v);
    assert_eq!(effective_mode(None, 2), Mode::R2v);
    assert_eq!(effective_mode(Some(Mode::T2v), 3), Mode::T2v);
}

fn arb_mode() -> impl Strategy<Value = Option<Mode>> {
    prop::option::of(prop_oneof![
        Just(Mode::Auto),
        Just(Mode::T2v),
        Just(Mode::I2v),
        Just(Mode::R2v)
    ])
}

fn arb_image() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(URL.to_owned()),
        "https?://[a-z@:\\[\\]]{0,10}(/[a-z ]{0,5})?",
        "data:image/[a-z]{0,4};base64,[A-Za-z0-9+/= ]{0,10}",
        ".{0,20}",
    ]
}

fn arb_request() -> impl Strategy<Value = VideoRequest> {
    (
        prop::option::of(prop_oneof![Just(DEFAULT_MODEL.to_owned()), ".{0,12}"]),
        prop_oneof![
            ".{0,40}",
            "([cC]haracter[0-9]{0,25} ){0,4}",
            (2490usize..2510).prop_map(|n| "é".repeat(n)),
        ],
        arb_mode(),
        prop::collection::vec(arb_image(), 0..12),
        prop::option::of(prop_oneof![Just("16:9".to_owned()), ".{0,6}"]),
        prop::option::of(prop_oneof![Just("1080p".to_owned()), ".{0,6}"]),
        prop::option::of(any::<u32>()),
        prop::option::of(any::<i64>()),
        prop::option::of(any::<bool>()),
    )
        .prop_map(
            |(model, prompt, mode, images, aspect_ratio, resolution, duration, seed, watermark)| {
                VideoRequest {
                    model,
                    prompt,
                    mode,
                    images,
                    aspect_ratio,
                    resolution,
                    duration_seconds: duration,
                    seed,
                    watermark,
                }
            },
        )
}

proptest! {
    #[test]
    fn validate_never_panics_and_keeps_its_promises(r in arb_request()) {
        match validate(&r) {
            Ok(v) => {
                let n = v.request;
                prop_assert!(n.model.is_some());
                prop_assert!(n.mode.is_some());
                prop_assert!(n.resolution.is_some());
                prop_assert!(n.watermark.is_some());
                let d = n.duration_seconds.unwrap();
                prop_assert!((MIN_DURATION_SECONDS..=MAX_DURATION_SECONDS).contains(&d));
                prop_assert_eq!(n.seed, r.seed);
                prop_assert!(n.prompt.chars().count() <= MAX_PROMPT_CHARS);
                prop_assert!(n.images.len() <= MAX_REFERENCE_IMAGES);
                let i2v = effective_mode(r.mode, r.images.len()) == Mode::I2v;
                prop_assert_eq!(n.aspect_ratio.is_none(), i2v);
            }
            Err(v) => {
                prop_assert!(!v.is_empty());
                for x in v {
                    prop_assert!(!x.message.is_empty());
                    prop_assert!([
                        RULE_REQUIRED, RULE_TOO_LONG, RULE_OUT_OF_RANGE, RULE_NOT_ALLOWED,
                        RULE_TOO_MANY, RULE_ONE_OF, RULE_INVALID_FORMAT, RULE_UNKNOWN_REFERENCE,
                    ].contains(&x.rule.as_str()));
                }
            }
        }
    }
}
