//! Every documented rule of HappyHorse 1.1, checked locally before anything is sent.
//!
//! A bad request costs a round trip and a wrong one costs money, so [`validate`] reports
//! every broken rule at once (a caller fixes them in one go) and returns the request exactly
//! as it will be sent: defaults filled in, fields that will not be sent set to `None`, with a
//! warning for each such adjustment.
//!
//! Field names in violations are the provider's wire names (`duration`, not
//! `duration_seconds`), so they match the provider's own documentation and error messages.

use crate::limits::{
    ASPECT_RATIOS, DEFAULT_ASPECT_RATIO, DEFAULT_DURATION_SECONDS, DEFAULT_MODEL,
    DEFAULT_RESOLUTION, MAX_DURATION_SECONDS, MAX_PROMPT_CHARS, MAX_REFERENCE_IMAGES, MAX_SEED,
    MIN_DURATION_SECONDS, RESOLUTIONS,
};
use video_gen_core::model::{FieldViolation, FieldWarning, Mode, ValidatedRequest, VideoRequest};

/// Rule: a value that must be present is missing or blank.
pub const RULE_REQUIRED: &str = "required";
/// Rule: a string is longer than allowed.
pub const RULE_TOO_LONG: &str = "too-long";
/// Rule: a number is outside its range.
pub const RULE_OUT_OF_RANGE: &str = "out-of-range";
/// Rule: a value is given where the mode forbids it.
pub const RULE_NOT_ALLOWED: &str = "not-allowed";
/// Rule: a list has more items than allowed.
pub const RULE_TOO_MANY: &str = "too-many";
/// Rule: a value is not one of an enumerated set.
pub const RULE_ONE_OF: &str = "one-of";
/// Rule: a value is not in an accepted syntax.
pub const RULE_INVALID_FORMAT: &str = "invalid-format";
/// Rule: the prompt names a reference image that was not given.
pub const RULE_UNKNOWN_REFERENCE: &str = "unknown-reference";

/// The model's name as people know it, used in messages.
const MODEL_NAME: &str = "HappyHorse 1.1";

/// Longest excerpt of a caller's value quoted in a message: image data URLs can be megabytes.
const EXCERPT_CHARS: usize = 60;

/// Checks `req` against every rule and returns it normalized, or every violated rule.
///
/// The normalized request has every field `Some`, except `seed` when none was given (the
/// provider then picks one) and `aspect_ratio` in image-to-video (the image decides; a given
/// ratio is dropped with a warning). `mode` stays as the caller gave it (`Auto` is sent as
/// `auto` and the provider detects), defaulting to `Auto`.
pub fn validate(req: &VideoRequest) -> Result<ValidatedRequest, Vec<FieldViolation>> {
    let mut checks = Checks::default();
    let mode = req.mode.unwrap_or(Mode::Auto);
    let effective = effective_mode(req.mode, req.images.len());

    check_prompt(&mut checks, &req.prompt);
    let model = check_model(&mut checks, req.model.as_deref());
    check_image_count(&mut checks, mode, req.images.len());
    check_image_items(&mut checks, mode, &req.images);
    if effective == Mode::R2v {
        check_character_refs(&mut checks, &req.prompt, req.images.len());
    }
    let aspect_ratio = check_aspect_ratio(&mut checks, req.aspect_ratio.as_deref(), effective);
    let resolution = check_resolution(&mut checks, req.resolution.as_deref());
    let duration = check_duration(&mut checks, req.duration_seconds);
    let seed = check_seed(&mut checks, req.seed);

    if !checks.violations.is_empty() {
        return Err(checks.violations);
    }
    Ok(ValidatedRequest {
        request: VideoRequest {
            model: Some(model),
            prompt: req.prompt.clone(),
            mode: Some(mode),
            images: req.images.clone(),
            aspect_ratio,
            resolution: Some(resolution),
            duration_seconds: Some(duration),
            seed,
            watermark: Some(req.watermark.unwrap_or(false)),
        },
        warnings: checks.warnings,
    })
}

/// The mode whose rules apply: an explicit mode is itself; `auto` (or `None`) is decided by
/// the image count the way the provider documents it (none t2v, one i2v, several r2v).
pub fn effective_mode(mode: Option<Mode>, image_count: usize) -> Mode {
    match mode.unwrap_or(Mode::Auto) {
        Mode::Auto => match image_count {
            0 => Mode::T2v,
            1 => Mode::I2v,
            _ => Mode::R2v,
        },
        explicit => explicit,
    }
}

/// What validation found so far; collected rather than returned so no rule hides another.
#[derive(Default)]
struct Checks {
    violations: Vec<FieldViolation>,
    warnings: Vec<FieldWarning>,
}

impl Checks {
    fn violation(&mut self, field: impl Into<String>, rule: &str, message: String) {
        self.violations.push(FieldViolation {
            field: field.into(),
            rule: rule.to_owned(),
            message,
        });
    }

    fn warning(&mut self, field: &str, message: String) {
        self.warnings.push(FieldWarning {
            field: field.to_owned(),
            message,
        });
    }
}

fn check_prompt(checks: &mut Checks, prompt: &str) {
    if prompt.trim().is_empty() {
        checks.violation(
            "prompt",
            RULE_REQUIRED,
            format!(
                "prompt is empty; describe the scene to generate in up to {MAX_PROMPT_CHARS} characters"
            ),
        );
        return;
    }
    // The provider counts characters, and a byte count would refuse valid non-ASCII prompts.
    let chars = prompt.chars().count();
    if chars > MAX_PROMPT_CHARS {
        checks.violation(
            "prompt",
            RULE_TOO_LONG,
            format!(
                "prompt is {chars} characters long; {MODEL_NAME} accepts at most {MAX_PROMPT_CHARS}, so shorten it by {}",
                chars - MAX_PROMPT_CHARS
            ),
        );
    }
}

fn check_model(checks: &mut Checks, model: Option<&str>) -> String {
    let Some(model) = model else {
        return DEFAULT_MODEL.to_owned();
    };
    if model.trim().is_empty() {
        checks.violation(
            "model",
            RULE_REQUIRED,
            format!("model is blank; leave it unset for {DEFAULT_MODEL} or give a model id"),
        );
    } else if !model.chars().all(is_model_id_char) {
        checks.violation(
            "model",
            RULE_INVALID_FORMAT,
            format!(
                "model {} contains characters other than letters, digits, '.', '_' and '-'; use a model id such as {DEFAULT_MODEL}",
                excerpt(model)
            ),
        );
    } else if model != DEFAULT_MODEL {
        // Another id may be a newer model the provider added; sending it is the caller's call,
        // but our limits may not be that model's.
        checks.warning(
            "model",
            format!(
                "model {} is not {DEFAULT_MODEL}; it is sent as given, but the rules checked are {MODEL_NAME}'s",
                excerpt(model)
            ),
        );
    }
    model.to_owned()
}

fn is_model_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Count rules depend on the mode the caller chose: `auto` only has the overall maximum,
/// because any count picks a valid mode.
fn check_image_count(checks: &mut Checks, mode: Mode, count: usize) {
    match mode {
        Mode::T2v if count > 0 => checks.violation(
            "image",
            RULE_NOT_ALLOWED,
            format!(
                "mode t2v (text-to-video) takes no images, but {count} {} given; remove the images or use mode i2v, r2v or auto",
                were(count)
            ),
        ),
        Mode::I2v if count == 0 => checks.violation(
            "image",
            RULE_REQUIRED,
            "mode i2v (image-to-video) animates one image, but none was given; add one image or use mode t2v".to_owned(),
        ),
        Mode::I2v if count > 1 => checks.violation(
            "image",
            RULE_TOO_MANY,
            format!(
                "mode i2v (image-to-video) animates exactly one image, but {count} were given; give one image, or use mode r2v for several references"
            ),
        ),
        Mode::R2v if count == 0 => checks.violation(
            "image",
            RULE_REQUIRED,
            format!(
                "mode r2v (reference-to-video) needs 1 to {MAX_REFERENCE_IMAGES} reference images, but none was given; add images or use mode t2v"
            ),
        ),
        Mode::R2v | Mode::Auto if count > MAX_REFERENCE_IMAGES => checks.violation(
            "image",
            RULE_TOO_MANY,
            format!(
                "{count} images were given; {MODEL_NAME} accepts at most {MAX_REFERENCE_IMAGES} reference images, so remove {}",
                count - MAX_REFERENCE_IMAGES
            ),
        ),
        _ => {}
    }
}

fn check_image_items(checks: &mut Checks, mode: Mode, images: &[String]) {
    // In text-to-video the images are refused as a whole; judging each one would only add noise.
    if mode == Mode::T2v {
        return;
    }
    for (i, image) in images.iter().enumerate() {
        if let Some(problem) = image_problem(image) {
            checks.violation(
                format!("image[{i}]"),
                RULE_INVALID_FORMAT,
                format!(
                    "image[{i}] {} {problem}; give an http:// or https:// URL, or a data:image/<type>;base64,<data> URL",
                    excerpt(image)
                ),
            );
        }
    }
}

/// Why `image` is not an accepted image reference, or `None` when it is.
fn image_problem(image: &str) -> Option<&'static str> {
    if image.is_empty() {
        return Some("is empty");
    }
    // Whitespace is never valid in a URL, and a stray newline could split a header or a log line.
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("contains whitespace or control characters");
    }
    if let Some(rest) =
        strip_prefix_ci(image, "https://").or_else(|| strip_prefix_ci(image, "http://"))
    {
        return if url_host(rest).is_empty() {
            Some("has no host")
        } else {
            None
        };
    }
    if let Some(rest) = strip_prefix_ci(image, "data:") {
        return data_url_problem(rest);
    }
    Some("is neither an http(s) URL nor a data URL")
}

/// The host of a URL given without its `scheme://`: the authority minus user info and port.
fn url_host(after_scheme: &str) -> &str {
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    if let Some(bracketed) = host_port.strip_prefix('[') {
        // An IPv6 literal: its colons are not a port separator.
        return bracketed.split(']').next().unwrap_or_default();
    }
    host_port.split(':').next().unwrap_or_default()
}

/// Why `rest` (a data URL after `data:`) is not `image/<type>;base64,<payload>`.
fn data_url_problem(rest: &str) -> Option<&'static str> {
    let Some((meta, payload)) = rest.split_once(',') else {
        return Some("is a data URL without a payload");
    };
    let Some(media) = strip_prefix_ci(meta, "image/") else {
        return Some("is a data URL whose media type is not image/<type>");
    };
    let Some((subtype, encoding)) = media.split_once(';') else {
        return Some("is a data URL that is not base64-encoded");
    };
    if subtype.is_empty()
        || !subtype
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'))
    {
        return Some("is a data URL whose media type is not image/<type>");
    }
    if !encoding.eq_ignore_ascii_case("base64") {
        return Some("is a data URL that is not base64-encoded");
    }
    if payload.is_empty() {
        return Some("is a data URL with an empty payload");
    }
    if !payload
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_'))
    {
        return Some("is a data URL whose payload is not base64");
    }
    None
}

/// `s` without the ASCII `prefix`, matched case-insensitively (URL schemes are).
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// In reference-to-video the prompt names images `character1`, `character2`, …; a name
/// without an image would silently generate a character nobody supplied.
fn check_character_refs(checks: &mut Checks, prompt: &str, image_count: usize) {
    let mut reported: Vec<String> = Vec::new();
    for reference in character_refs(prompt) {
        let known = reference.number >= 1 && reference.number <= image_count as u64;
        if known || reported.contains(&reference.name) {
            continue;
        }
        let given = match image_count {
            0 => "no reference images were given".to_owned(),
            1 => "only 1 reference image was given (character1)".to_owned(),
            n => format!("only {n} reference images were given (character1 to character{n})"),
        };
        checks.violation(
            "prompt",
            RULE_UNKNOWN_REFERENCE,
            format!(
                "the prompt names {}, but {given}; add the image or change the reference",
                reference.name
            ),
        );
        reported.push(reference.name);
    }
}

/// One `characterN` found in a prompt.
struct CharacterRef {
    /// As written (digits verbatim), for messages; long digit runs are shortened.
    name: String,
    /// `N`, saturated at `u64::MAX` so an absurd run of digits is still out of range.
    number: u64,
}

/// Every `characterN` in `prompt`, matched case-insensitively, `N` being the whole digit run.
fn character_refs(prompt: &str) -> Vec<CharacterRef> {
    const WORD: &[u8] = b"character";
    // "character" is ASCII, and ASCII bytes never occur inside a multi-byte UTF-8 sequence,
    // so a byte scan finds exactly the character matches.
    let bytes = prompt.as_bytes();
    let mut refs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let is_word = bytes
            .get(i..i.saturating_add(WORD.len()))
            .is_some_and(|w| w.eq_ignore_ascii_case(WORD));
        if !is_word {
            i += 1;
            continue;
        }
        let after = i + WORD.len();
        let digits: &[u8] = bytes.get(after..).unwrap_or_default();
        let run_len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        let run = digits.get(..run_len).unwrap_or_default();
        if !run.is_empty() {
            refs.push(CharacterRef {
                name: character_name(run),
                number: run.iter().fold(0u64, |n, d| {
                    n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                }),
            });
        }
        i = after + run_len;
    }
    refs
}

fn character_name(digits: &[u8]) -> String {
    const SHOWN: usize = 12;
    let shown: String = digits.iter().take(SHOWN).map(|&d| char::from(d)).collect();
    if digits.len() > SHOWN {
        format!("character{shown}…")
    } else {
        format!("character{shown}")
    }
}

fn check_aspect_ratio(checks: &mut Checks, given: Option<&str>, effective: Mode) -> Option<String> {
    if let Some(ratio) = given
        && !ASPECT_RATIOS.contains(&ratio)
    {
        checks.violation(
            "aspect_ratio",
            RULE_ONE_OF,
            format!(
                "aspect_ratio is {}; {MODEL_NAME} accepts {}",
                excerpt(ratio),
                or_list(ASPECT_RATIOS)
            ),
        );
        return None;
    }
    if effective == Mode::I2v {
        if let Some(ratio) = given {
            checks.warning(
                "aspect_ratio",
                format!(
                    "image-to-video follows the source image's aspect ratio; {ratio} was not sent"
                ),
            );
        }
        return None;
    }
    Some(given.unwrap_or(DEFAULT_ASPECT_RATIO).to_owned())
}

fn check_resolution(checks: &mut Checks, given: Option<&str>) -> String {
    let resolution = given.unwrap_or(DEFAULT_RESOLUTION);
    if !RESOLUTIONS.contains(&resolution) {
        checks.violation(
            "resolution",
            RULE_ONE_OF,
            format!(
                "resolution is {}; {MODEL_NAME} accepts {}",
                excerpt(resolution),
                or_list(RESOLUTIONS)
            ),
        );
    }
    resolution.to_owned()
}

fn check_duration(checks: &mut Checks, given: Option<u32>) -> u32 {
    let seconds = given.unwrap_or(DEFAULT_DURATION_SECONDS);
    if !(MIN_DURATION_SECONDS..=MAX_DURATION_SECONDS).contains(&seconds) {
        checks.violation(
            "duration",
            RULE_OUT_OF_RANGE,
            format!(
                "duration is {seconds} s; {MODEL_NAME} accepts {MIN_DURATION_SECONDS} to {MAX_DURATION_SECONDS} s"
            ),
        );
    }
    seconds
}

fn check_seed(checks: &mut Checks, given: Option<i64>) -> Option<i64> {
    if let Some(seed) = given
        && !(0..=MAX_SEED).contains(&seed)
    {
        checks.violation(
            "seed",
            RULE_OUT_OF_RANGE,
            format!(
                "seed is {seed}; {MODEL_NAME} accepts 0 to {MAX_SEED}, or leave it unset for a random result"
            ),
        );
    }
    given
}

/// `value` quoted and escaped for a message, shortened so a huge value cannot flood a log.
fn excerpt(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(EXCERPT_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

/// "a, b or c".
fn or_list(items: &[&str]) -> String {
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

fn were(count: usize) -> &'static str {
    if count == 1 { "was" } else { "were" }
}

// The tests sit in their own file but stay a child of this module, like `parse`'s.
#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
