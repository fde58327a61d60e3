//! What a request will cost if it succeeds, from an overridable rate card.
//!
//! The provider bills per second of output video at a per-resolution rate, and says its live
//! rate card is what it charges; so the built-in card ([`default_rates`]) is only a default
//! and a caller may pass the live one.

use crate::limits::{CURRENCY, default_rates};
use crate::validate::{RULE_INVALID_FORMAT, RULE_OUT_OF_RANGE, RULE_REQUIRED, validate};
use video_gen_core::model::{CostEstimate, FieldViolation, ResolutionRate, VideoRequest};

/// The field name used in violations about the rate card itself.
const RATES_FIELD: &str = "rates";

/// Prices `req` as it would be sent (after validation and defaults), using `rates` or, when
/// `None`, the provider's published card.
///
/// Returns the request's violations and any problem with the rate card together: a rate
/// card listing one resolution twice is refused (`invalid-format`, it is ambiguous), a card
/// without the request's resolution is refused (`required`), and a total that would overflow
/// is refused (`out-of-range`) rather than wrapped.
pub fn estimate_cost(
    req: &VideoRequest,
    rates: Option<&[ResolutionRate]>,
) -> Result<CostEstimate, Vec<FieldViolation>> {
    let defaults;
    let rates = match rates {
        Some(rates) => rates,
        None => {
            defaults = default_rates();
            &defaults
        }
    };
    let rate_card_faults = duplicate_rates(rates);
    let normalized = match validate(req) {
        Ok(v) => v.request,
        Err(mut violations) => {
            violations.extend(rate_card_faults);
            return Err(violations);
        }
    };
    if !rate_card_faults.is_empty() {
        return Err(rate_card_faults);
    }
    let resolution = normalized.resolution.unwrap_or_default();
    let seconds = normalized.duration_seconds.unwrap_or_default();
    let rate = rate_for(rates, &resolution)?;
    let total = u64::from(seconds)
        .checked_mul(rate)
        .ok_or_else(|| vec![overflow(seconds, rate)])?;
    Ok(CostEstimate {
        currency: CURRENCY.to_owned(),
        billed_seconds: seconds,
        micros_per_second: rate,
        total_micros: total,
    })
}

/// One violation per resolution listed more than once.
fn duplicate_rates(rates: &[ResolutionRate]) -> Vec<FieldViolation> {
    let mut seen: Vec<&str> = Vec::new();
    let mut reported: Vec<&str> = Vec::new();
    for rate in rates {
        let name = rate.resolution.as_str();
        if seen.contains(&name) && !reported.contains(&name) {
            reported.push(name);
        }
        seen.push(name);
    }
    reported
        .into_iter()
        .map(|name| FieldViolation {
            field: RATES_FIELD.to_owned(),
            rule: RULE_INVALID_FORMAT.to_owned(),
            message: format!(
                "the rate card lists {name:?} more than once, so its price is ambiguous; give each resolution one rate"
            ),
        })
        .collect()
}

fn rate_for(rates: &[ResolutionRate], resolution: &str) -> Result<u64, Vec<FieldViolation>> {
    rates
        .iter()
        .find(|r| r.resolution == resolution)
        .map(|r| r.micros_per_second)
        .ok_or_else(|| {
            let listed: Vec<&str> = rates.iter().map(|r| r.resolution.as_str()).collect();
            vec![FieldViolation {
                field: RATES_FIELD.to_owned(),
                rule: RULE_REQUIRED.to_owned(),
                message: format!(
                    "the rate card has no rate for {resolution:?} (it lists {}); add a rate for {resolution:?}",
                    if listed.is_empty() {
                        "nothing".to_owned()
                    } else {
                        listed.join(", ")
                    }
                ),
            }]
        })
}

fn overflow(seconds: u32, rate: u64) -> FieldViolation {
    FieldViolation {
        field: RATES_FIELD.to_owned(),
        rule: RULE_OUT_OF_RANGE.to_owned(),
        message: format!(
            "{seconds} s at {rate} micro-units per second overflows a 64-bit total; check the rate card"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use video_gen_core::model::Mode;

    fn req(resolution: Option<&str>, seconds: Option<u32>) -> VideoRequest {
        VideoRequest {
            prompt: "a horse".into(),
            resolution: resolution.map(str::to_owned),
            duration_seconds: seconds,
            ..VideoRequest::default()
        }
    }

    fn rate(resolution: &str, micros: u64) -> ResolutionRate {
        ResolutionRate {
            resolution: resolution.into(),
            micros_per_second: micros,
        }
    }

    #[test]
    fn default_clip_costs_seventy_cents() {
        let c = estimate_cost(&req(None, None), None).unwrap();
        assert_eq!(
            c,
            CostEstimate {
                currency: "USD".into(),
                billed_seconds: 5,
                micros_per_second: 140_000,
                total_micros: 700_000,
            }
        );
    }

    #[test]
    fn longest_1080p_clip_costs_two_seventy() {
        let c = estimate_cost(&req(Some("1080p"), Some(15)), None).unwrap();
        assert_eq!(c.total_micros, 2_700_000);
        assert_eq!(c.micros_per_second, 180_000);
    }

    #[test]
    fn caller_rates_override_the_default_card() {
        let rates = [rate("720p", 100_000), rate("1080p", 200_000)];
        let c = estimate_cost(&req(None, Some(3)), Some(&rates)).unwrap();
        assert_eq!(c.total_micros, 300_000);
    }

    #[test]
    fn missing_rate_is_required() {
        let rates = [rate("720p", 100_000)];
        let e = estimate_cost(&req(Some("1080p"), None), Some(&rates)).unwrap_err();
        assert_eq!(
            (e[0].field.as_str(), e[0].rule.as_str()),
            ("rates", "required")
        );
        let e = estimate_cost(&req(None, None), Some(&[])).unwrap_err();
        assert_eq!(e[0].rule, "required");
    }

    #[test]
    fn duplicate_rates_are_refused_once_per_resolution() {
        let rates = [rate("720p", 1), rate("720p", 2), rate("720p", 3)];
        let e = estimate_cost(&req(None, None), Some(&rates)).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].field.as_str(), e[0].rule.as_str()),
            ("rates", "invalid-format")
        );
    }

    #[test]
    fn request_and_rate_card_faults_are_reported_together() {
        let rates = [rate("720p", 1), rate("720p", 2)];
        let bad = VideoRequest {
            mode: Some(Mode::I2v),
            ..req(None, Some(99))
        };
        let e = estimate_cost(&bad, Some(&rates)).unwrap_err();
        let fields: Vec<&str> = e.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["image", "duration", "rates"]);
    }

    #[test]
    fn overflow_is_refused_not_wrapped() {
        let rates = [rate("720p", u64::MAX)];
        let e = estimate_cost(&req(None, None), Some(&rates)).unwrap_err();
        assert_eq!(e[0].rule, "out-of-range");
    }

    proptest! {
        #[test]
        fn total_is_seconds_times_rate(seconds in 3u32..=15, micros in 0u64..=1_000_000_000) {
            let rates = [rate("720p", micros), rate("1080p", 1)];
            let c = estimate_cost(&req(None, Some(seconds)), Some(&rates)).unwrap();
            prop_assert_eq!(c.total_micros, u64::from(seconds) * micros);
            prop_assert_eq!(c.billed_seconds, seconds);
        }
    }
}
