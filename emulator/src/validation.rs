//! The documented rules for a submit body, turned into a typed request or a named-field error.

use http::StatusCode;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// The only model id the provider serves.
pub(crate) const MODEL_ID: &str = "happyhorse-1-1";
/// Longest prompt accepted, in Unicode scalar values.
pub(crate) const MAX_PROMPT_CHARS: usize = 2500;
/// Most reference images accepted (the `r2v` limit, which `auto` shares).
pub(crate) const MAX_IMAGES: usize = 9;
/// Shortest and longest clip, in seconds.
pub(crate) const DURATION_RANGE: (f64, f64) = (3.0, 15.0);
/// Largest seed.
pub(crate) const MAX_SEED: u64 = 2_147_483_647;

/// The generation mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Auto,
    T2v,
    I2v,
    R2v,
}

/// The output resolution, which sets the price per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    P720,
    P1080,
}

impl Resolution {
    /// The documented price in USD per second of output.
    pub fn usd_per_second(self) -> f64 {
        match self {
            Resolution::P720 => 0.14,
            Resolution::P1080 => 0.18,
        }
    }
}

/// A submit body that passed every rule, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GenerationRequest {
    pub prompt: String,
    pub mode: Mode,
    pub images: Vec<String>,
    pub aspect_ratio: String,
    pub resolution: Resolution,
    pub duration: f64,
    pub seed: Option<u64>,
    pub watermark: bool,
}

/// Parses and validates a raw submit body.
pub(crate) fn parse_submit(body: &[u8]) -> Result<GenerationRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    validate(&value)
}

/// Validates a parsed submit body against the documented rules, in table order after `model`.
pub(crate) fn validate(value: &Value) -> Result<GenerationRequest, ApiError> {
    let Value::Object(body) = value else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "request body must be a JSON object",
        ));
    };

    match field(body, "model") {
        None => return Err(ApiError::invalid_param("model", "model is required")),
        Some(Value::String(model)) if model == MODEL_ID => {}
        Some(Value::String(model)) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "model_not_found",
                format!("model '{model}' does not exist; the available model is '{MODEL_ID}'"),
            ));
        }
        Some(_) => return Err(ApiError::invalid_param("model", "model must be a string")),
    }

    let prompt = match field(body, "prompt") {
        None => return Err(ApiError::invalid_param("prompt", "prompt is required")),
        Some(Value::String(p)) => p,
        Some(_) => return Err(ApiError::invalid_param("prompt", "prompt must be a string")),
    };
    if prompt.trim().is_empty() {
        return Err(ApiError::invalid_param(
            "prompt",
            "prompt must not be empty",
        ));
    }
    let prompt_chars = prompt.chars().count();
    if prompt_chars > MAX_PROMPT_CHARS {
        return Err(ApiError::invalid_param(
            "prompt",
            format!("prompt must be at most {MAX_PROMPT_CHARS} characters (got {prompt_chars})"),
        ));
    }

    let mode = match field(body, "mode") {
        None => Mode::Auto,
        Some(Value::String(m)) => match m.as_str() {
            "auto" => Mode::Auto,
            "t2v" => Mode::T2v,
            "i2v" => Mode::I2v,
            "r2v" => Mode::R2v,
            _ => return Err(enum_error("mode", &["auto", "t2v", "i2v", "r2v"])),
        },
        Some(_) => return Err(enum_error("mode", &["auto", "t2v", "i2v", "r2v"])),
    };

    let images = parse_images(field(body, "image"))?;
    check_image_count(mode, images.len())?;

    const RATIOS: [&str; 5] = ["16:9", "9:16", "1:1", "4:3", "3:4"];
    let aspect_ratio = match field(body, "aspect_ratio") {
        None => "16:9".to_owned(),
        Some(Value::String(r)) if RATIOS.contains(&r.as_str()) => r.clone(),
        Some(_) => return Err(enum_error("aspect_ratio", &RATIOS)),
    };

    let resolution = match field(body, "resolution") {
        None => Resolution::P720,
        Some(Value::String(r)) if r == "720p" => Resolution::P720,
        Some(Value::String(r)) if r == "1080p" => Resolution::P1080,
        Some(_) => return Err(enum_error("resolution", &["720p", "1080p"])),
    };

    let (min, max) = DURATION_RANGE;
    let duration = match field(body, "duration") {
        None => 5.0,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(d) if (min..=max).contains(&d) => d,
            _ => return Err(duration_error()),
        },
        Some(_) => return Err(duration_error()),
    };

    let seed = match field(body, "seed") {
        None => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(s) if s <= MAX_SEED => Some(s),
            _ => return Err(seed_error()),
        },
        Some(_) => return Err(seed_error()),
    };

    let watermark = match field(body, "watermark") {
        None => false,
        Some(Value::Bool(w)) => *w,
        Some(_) => {
            return Err(ApiError::invalid_param(
                "watermark",
                "watermark must be a boolean",
            ));
        }
    };

    Ok(GenerationRequest {
        prompt: prompt.clone(),
        mode,
        images,
        aspect_ratio,
        resolution,
        duration,
        seed,
        watermark,
    })
}

// A field set to JSON null is treated as omitted, so that a client serialising `None` as
// `null` gets the documented default rather than a type error.
fn field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

fn enum_error(param: &str, allowed: &[&str]) -> ApiError {
    ApiError::invalid_param(
        param,
        format!("{param} must be one of: {}", allowed.join(", ")),
    )
}

fn duration_error() -> ApiError {
    let (min, max) = DURATION_RANGE;
    ApiError::invalid_param(
        "duration",
        format!("duration must be a number of seconds from {min} to {max}"),
    )
}

fn seed_error() -> ApiError {
    ApiError::invalid_param(
        "seed",
        format!("seed must be an integer from 0 to {MAX_SEED}"),
    )
}

fn parse_images(value: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let shape_error =
        || ApiError::invalid_param("image", "image must be a string or an array of strings");
    let images: Vec<&str> = match value {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().ok_or_else(shape_error))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(shape_error()),
    };
    for (index, image) in images.iter().enumerate() {
        if !is_image_reference(image) {
            let name = if matches!(value, Some(Value::Array(_))) {
                format!("image[{index}]")
            } else {
                "image".to_owned()
            };
            return Err(ApiError::invalid_param(
                "image",
                format!("{name} must be an http(s) URL or a data:image/...;base64, URL"),
            ));
        }
    }
    Ok(images.into_iter().map(str::to_owned).collect())
}

fn check_image_count(mode: Mode, count: usize) -> Result<(), ApiError> {
    let problem = match mode {
        Mode::T2v if count > 0 => Some("mode t2v takes no image".to_owned()),
        Mode::I2v if count != 1 => Some(format!("mode i2v needs exactly 1 image (got {count})")),
        Mode::R2v if !(1..=MAX_IMAGES).contains(&count) => Some(format!(
            "mode r2v needs 1 to {MAX_IMAGES} images (got {count})"
        )),
        Mode::Auto if count > MAX_IMAGES => Some(format!(
            "at most {MAX_IMAGES} images are accepted (got {count})"
        )),
        _ => None,
    };
    problem.map_or(Ok(()), |message| {
        Err(ApiError::invalid_param("image", message))
    })
}

/// Whether `s` is an `http(s)` URL with a host, or a base64 `data:image/...` URL.
fn is_image_reference(s: &str) -> bool {
    if let Some(rest) = strip_prefix_ignore_case(s, "data:") {
        return is_base64_image_data(rest);
    }
    match url::Url::parse(s) {
        Ok(url) => {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some_and(|h| !h.is_empty())
        }
        Err(_) => false,
    }
}

// `rest` is what follows `data:`: `image/<subtype>[;params];base64,<payload>`.
fn is_base64_image_data(rest: &str) -> bool {
    let Some((media, payload)) = rest.split_once(',') else {
        return false;
    };
    let Some(media) = strip_prefix_ignore_case(media, "image/") else {
        return false;
    };
    let Some((subtype_and_params, flag)) = media.rsplit_once(';') else {
        return false;
    };
    let subtype = subtype_and_params.split(';').next().unwrap_or_default();
    flag.eq_ignore_ascii_case("base64")
        && !subtype.is_empty()
        && !payload.is_empty()
        && payload
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(v: Value) -> GenerationRequest {
        validate(&v).unwrap_or_else(|e| panic!("{v} rejected: {e:?}"))
    }

    fn param_of(v: Value) -> String {
        let e = validate(&v).expect_err("should be rejected");
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{e:?}");
        e.param.unwrap_or_default()
    }

    fn base() -> Value {
        json!({"model": MODEL_ID, "prompt": "a horse"})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut v = base();
        v[key] = value;
        v
    }

    #[test]
    fn defaults_apply() {
        let r = ok(base());
        assert_eq!(r.mode, Mode::Auto);
        assert_eq!(r.aspect_ratio, "16:9");
        assert_eq!(r.resolution, Resolution::P720);
        assert_eq!(r.duration, 5.0);
        assert_eq!(r.seed, None);
        assert!(!r.watermark);
        assert!(r.images.is_empty());
    }

    #[test]
    fn nulls_mean_omitted_and_unknown_fields_are_ignored() {
        let r = ok(
            json!({"model": MODEL_ID, "prompt": "p", "seed": null, "image": null,
                          "mode": null, "extra": {"x": 1}}),
        );
        assert_eq!(r.seed, None);
        assert_eq!(r.mode, Mode::Auto);
    }

    #[test]
    fn model_rules() {
        assert_eq!(param_of(json!({"prompt": "p"})), "model");
        assert_eq!(param_of(with("model", json!(1))), "model");
        let e = validate(&with("model", json!("happyhorse-1-0"))).unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.code, "model_not_found");
    }

    #[test]
    fn prompt_rules() {
        assert_eq!(param_of(json!({"model": MODEL_ID})), "prompt");
        assert_eq!(param_of(with("prompt", json!(""))), "prompt");
        assert_eq!(param_of(with("prompt", json!(["a"]))), "prompt");
        // Characters, not bytes: 2,500 multi-byte characters pass, one more fails.
        ok(with("prompt", json!("é".repeat(2500))));
        assert_eq!(param_of(with("prompt", json!("é".repeat(2501)))), "prompt");
    }

    #[test]
    fn enum_rules() {
        for (key, good, bad) in [
            ("mode", "t2v", "T2V"),
            ("aspect_ratio", "3:4", "21:9"),
            ("resolution", "1080p", "4k"),
        ] {
            ok(with(key, json!(good)));
            assert_eq!(param_of(with(key, json!(bad))), key);
            assert_eq!(param_of(with(key, json!(7))), key);
        }
    }

    #[test]
    fn duration_seed_watermark_rules() {
        assert_eq!(ok(with("duration", json!(3))).duration, 3.0);
        assert_eq!(ok(with("duration", json!(15))).duration, 15.0);
        assert_eq!(ok(with("duration", json!(7.5))).duration, 7.5);
        for bad in [json!(2.9), json!(15.01), json!("5"), json!(-4)] {
            assert_eq!(param_of(with("duration", bad)), "duration");
        }
        assert_eq!(ok(with("seed", json!(0))).seed, Some(0));
        assert_eq!(ok(with("seed", json!(MAX_SEED))).seed, Some(MAX_SEED));
        for bad in [json!(MAX_SEED + 1), json!(-1), json!(1.5), json!("1")] {
            assert_eq!(param_of(with("seed", bad)), "seed");
        }
        assert!(ok(with("watermark", json!(true))).watermark);
        assert_eq!(param_of(with("watermark", json!("true"))), "watermark");
    }

    #[test]
    fn image_forms_and_counts() {
        let url = "https://example.com/a.png";
        let data = "data:image/png;base64,iVBORw0KGgo=";
        assert_eq!(ok(with("image", json!(url))).images, vec![url]);
        assert_eq!(ok(with("image", json!([url, data]))).images.len(), 2);
        for bad in [
            json!("ftp://example.com/a.png"),
            json!("not a url"),
            json!("data:text/plain;base64,aGk="),
            json!("data:image/png,rawbytes"),
            json!("data:image/png;base64,"),
            json!("data:image/png;base64,***"),
            json!(["https://example.com/a.png", 3]),
            json!({"url": url}),
            json!(""),
        ] {
            assert_eq!(param_of(with("image", bad.clone())), "image", "{bad}");
        }

        let mut v = with("image", json!([url]));
        v["mode"] = json!("i2v");
        ok(v.clone());
        v["image"] = json!([url, url]);
        assert_eq!(param_of(v.clone()), "image");
        v["image"] = json!([]);
        assert_eq!(param_of(v), "image");

        let mut v = with("mode", json!("t2v"));
        ok(v.clone());
        v["image"] = json!(url);
        assert_eq!(param_of(v), "image");

        let mut v = with("mode", json!("r2v"));
        assert_eq!(param_of(v.clone()), "image");
        v["image"] = json!(vec![url; 9]);
        ok(v.clone());
        v["image"] = json!(vec![url; 10]);
        assert_eq!(param_of(v), "image");

        ok(with("image", json!(vec![url; 9])));
        assert_eq!(param_of(with("image", json!(vec![url; 10]))), "image");
    }

    #[test]
    fn body_must_be_a_json_object() {
        for body in [&b"{nope"[..], b"[]", b"\"text\"", b""] {
            let e = parse_submit(body).unwrap_err();
            assert_eq!(e.code, "invalid_request");
        }
    }
}
