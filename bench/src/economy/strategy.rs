//! The strategies as named on the command line (`fixed-5s`, `hint`, `pipeline@8/14`, …),
//! and their labels in the table and in the dumped jobs' file names.

use anyhow::{Context, Result};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Strategy {
    Fixed(f64),
    Hint,
    /// The pipeline; `learn: false` is the previous scheduler (a line through readings);
    /// `allowance` its lag allowances, if not the default.
    Pipeline {
        learn: bool,
        allowance: Option<Allowance>,
    },
}

/// A learning scheduler's lag allowances, in emulated time: `pipeline@8` (8 s; for polls
/// planned without a progress reading, the default) or `pipeline@8/14` (for those, 14 s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Allowance {
    /// `ScheduleConfig::lag_allowance`.
    pub(super) later: Duration,
    /// `ScheduleConfig::blind_lag_allowance`, if not the default.
    pub(super) blind: Option<Duration>,
}

impl Allowance {
    fn parse(text: &str) -> Result<Allowance> {
        let secs = |text: &str| {
            text.parse()
                .ok()
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                .with_context(|| format!("{text}: a lag allowance in seconds"))
        };
        Ok(match text.split_once('/') {
            Some((later, blind)) => Allowance {
                later: secs(later)?,
                blind: Some(secs(blind)?),
            },
            None => Allowance {
                later: secs(text)?,
                blind: None,
            },
        })
    }
}

impl Strategy {
    pub(super) fn parse(name: &str) -> Result<Strategy> {
        Ok(match name {
            "fixed-5s" => Strategy::Fixed(5_000.0),
            "fixed-60s" => Strategy::Fixed(60_000.0),
            "hint" => Strategy::Hint,
            "pipeline" => Strategy::Pipeline {
                learn: true,
                allowance: None,
            },
            "pipeline-line" => Strategy::Pipeline {
                learn: false,
                allowance: None,
            },
            other => {
                if let Some(allowance) = other.strip_prefix("pipeline@") {
                    Strategy::Pipeline {
                        learn: true,
                        allowance: Some(Allowance::parse(allowance)?),
                    }
                } else if let Some(secs) = other
                    .strip_prefix("fixed-")
                    .and_then(|s| s.strip_suffix('s'))
                {
                    Strategy::Fixed(secs.parse::<f64>()? * 1_000.0)
                } else {
                    anyhow::bail!("unknown strategy {other}")
                }
            }
        })
    }

    pub(super) fn label(self) -> String {
        match self {
            Strategy::Fixed(5_000.0) => "fixed 5 s (baseline)".into(),
            Strategy::Fixed(ms) => format!("fixed {} s", ms / 1_000.0),
            Strategy::Hint => "component hint, default policy".into(),
            Strategy::Pipeline {
                learn: true,
                allowance: None,
            } => "pipeline, learning scheduler".into(),
            Strategy::Pipeline {
                learn: true,
                allowance: Some(Allowance { later, blind }),
            } => match blind {
                Some(blind) => format!(
                    "learning, allowance {} s, blind {} s",
                    later.as_secs_f64(),
                    blind.as_secs_f64()
                ),
                None => format!("learning, allowance {} s", later.as_secs_f64()),
            },
            Strategy::Pipeline { learn: false, .. } => "pipeline, previous scheduler".into(),
        }
    }
}

/// A strategy's label as a file name: letters and digits kept, every run of anything else
/// one `-` (`learning, allowance 4.5 s` → `learning-allowance-4-5-s`).
pub(super) fn file_stem(label: &str) -> String {
    label
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_becomes_a_file_name_and_nothing_else() {
        assert_eq!(
            file_stem("learning, allowance 4.5 s, blind 11 s"),
            "learning-allowance-4-5-s-blind-11-s"
        );
        assert_eq!(file_stem("../../etc/passwd"), "etc-passwd");
        assert_eq!(file_stem("fixed 5 s (baseline)"), "fixed-5-s-baseline");
    }

    #[test]
    fn strategies_parse() {
        assert_eq!(
            Strategy::parse("fixed-5s").unwrap(),
            Strategy::Fixed(5_000.0)
        );
        assert_eq!(
            Strategy::parse("fixed-2.5s").unwrap(),
            Strategy::Fixed(2_500.0)
        );
        assert_eq!(
            Strategy::parse("pipeline").unwrap(),
            Strategy::Pipeline {
                learn: true,
                allowance: None
            }
        );
        assert_eq!(
            Strategy::parse("pipeline@8").unwrap(),
            Strategy::Pipeline {
                learn: true,
                allowance: Some(Allowance {
                    later: Duration::from_secs(8),
                    blind: None
                })
            }
        );
        assert_eq!(
            Strategy::parse("pipeline@7/10.5").unwrap(),
            Strategy::Pipeline {
                learn: true,
                allowance: Some(Allowance {
                    later: Duration::from_secs(7),
                    blind: Some(Duration::from_millis(10_500))
                })
            }
        );
        for bad in [
            "pipeline@-1",
            "pipeline@7/x",
            "pipeline@inf",
            "pipeline@/3",
            "pipeline@1e300/5",
        ] {
            assert!(Strategy::parse(bad).is_err(), "{bad}");
        }
        assert!(Strategy::parse("sometimes").is_err());
    }
}
