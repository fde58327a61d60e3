//! A storyboard's tree checked field by field: `[run]`, `[defaults]` and each shot, every
//! problem collected with its shot and field rather than stopping at the first.

use super::names::{RESERVED_STEMS, is_reserved, valid_name};
use super::{ImageSource, MAX_CONCURRENCY, Problem, RunSettings, Shot, parse_mode};
use crate::images::{self, LocalImage};
use happyhorse_sandbox::api::{ResolutionRate, VideoRequest};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Fields a shot may set.
pub(super) const SHOT_FIELDS: &[&str] = &[
    "name",
    "output",
    "prompt",
    "mode",
    "images",
    "aspect_ratio",
    "resolution",
    "duration",
    "seed",
    "watermark",
    "model",
];
/// Shot fields that only make sense per shot, so `[defaults]` may not set them.
pub(super) const PER_SHOT_ONLY: &[&str] = &["name", "output", "prompt"];
/// Fields of `[run]`.
pub(super) const RUN_FIELDS: &[&str] = &["concurrency", "max_cost", "output", "rates"];

pub(super) fn run_settings(
    tree: &Map<String, Value>,
    path: &Path,
    problems: &mut Vec<Problem>,
) -> RunSettings {
    let mut settings = RunSettings::default();
    let Some(run) = tree.get("run") else {
        return settings;
    };
    let Some(run) = run.as_object() else {
        problems.push(general("run", "must be a table"));
        return settings;
    };
    for (key, value) in run {
        let field = format!("run.{key}");
        match key.as_str() {
            "concurrency" => match value.as_u64() {
                Some(n) if (1..=MAX_CONCURRENCY as u64).contains(&n) => {
                    settings.concurrency = Some(n as usize);
                }
                _ => problems.push(general(
                    &field,
                    &format!("must be a whole number from 1 to {MAX_CONCURRENCY}"),
                )),
            },
            "max_cost" => match value.as_f64() {
                Some(x) if x.is_finite() && x >= 0.0 => {
                    settings.max_cost_micros = Some((x * 1_000_000.0).round() as u64);
                }
                _ => problems.push(general(
                    &field,
                    "must be a non-negative amount, such as 12.5",
                )),
            },
            "output" => match value.as_str() {
                Some(s) if !s.trim().is_empty() => {
                    let base = path.parent().unwrap_or(Path::new("."));
                    settings.output = Some(base.join(s));
                }
                _ => problems.push(general(&field, "must be a folder path")),
            },
            "rates" => {
                let Some(table) = value.as_object() else {
                    problems.push(general(
                        &field,
                        "must map resolutions to prices per second, such as { \"720p\" = 0.14 }",
                    ));
                    continue;
                };
                let mut rates = Vec::new();
                for (resolution, price) in table {
                    match price.as_f64() {
                        Some(x) if x.is_finite() && x >= 0.0 => rates.push(ResolutionRate {
                            resolution: resolution.clone(),
                            micros_per_second: (x * 1_000_000.0).round() as u64,
                        }),
                        _ => problems.push(general(
                            &format!("{field}.{resolution}"),
                            "must be a non-negative price per second, such as 0.14",
                        )),
                    }
                }
                settings.rates = Some(rates);
            }
            _ => problems.push(general(
                &field,
                &format!("unknown setting; [run] takes {}", RUN_FIELDS.join(", ")),
            )),
        }
    }
    settings
}

pub(super) fn defaults(
    tree: &Map<String, Value>,
    problems: &mut Vec<Problem>,
) -> Map<String, Value> {
    let Some(value) = tree.get("defaults") else {
        return Map::new();
    };
    let Some(map) = value.as_object() else {
        problems.push(general("defaults", "must be a table"));
        return Map::new();
    };
    let mut out = Map::new();
    for (key, value) in map {
        if PER_SHOT_ONLY.contains(&key.as_str()) {
            problems.push(general(
                &format!("defaults.{key}"),
                "is set per shot only and cannot have a default",
            ));
        } else if !SHOT_FIELDS.contains(&key.as_str()) {
            problems.push(general(
                &format!("defaults.{key}"),
                &format!("unknown field; shots take {}", SHOT_FIELDS.join(", ")),
            ));
        } else {
            out.insert(key.clone(), value.clone());
        }
    }
    out
}

pub(super) fn shot_list(tree: &Map<String, Value>, problems: &mut Vec<Problem>) -> Vec<Value> {
    let list = match (tree.get("shot"), tree.get("shots")) {
        (Some(_), Some(_)) => {
            problems.push(general(
                "shots",
                "give the shots as `shot` or `shots`, not both",
            ));
            return Vec::new();
        }
        (Some(v), None) | (None, Some(v)) => v,
        (None, None) => {
            problems.push(general(
                "shot",
                "the storyboard lists no shots; add [[shot]] tables",
            ));
            return Vec::new();
        }
    };
    match list.as_array() {
        Some(list) if !list.is_empty() => list.clone(),
        Some(_) => {
            problems.push(general("shot", "the storyboard lists no shots"));
            Vec::new()
        }
        None => {
            problems.push(general("shot", "must be a list of tables ([[shot]])"));
            Vec::new()
        }
    }
}

pub(super) fn general(field: &str, message: &str) -> Problem {
    Problem {
        shot: None,
        field: field.to_string(),
        message: message.to_string(),
    }
}

pub(super) struct ShotReader<'a> {
    pub(super) base: &'a Path,
    pub(super) defaults: &'a Map<String, Value>,
    pub(super) problems: &'a mut Vec<Problem>,
    /// Images used by several shots are read once.
    pub(super) cache: HashMap<PathBuf, Result<LocalImage, String>>,
    /// Lowercased, since names become file names and some file systems ignore case.
    pub(super) names: HashSet<String>,
    pub(super) outputs: HashSet<String>,
    /// Shots with problems of their own, as far as they could be read.
    pub(super) flawed: Vec<Shot>,
}

impl ShotReader<'_> {
    pub(super) fn shot(&mut self, index: usize, value: &Value) -> Option<Shot> {
        let label = format!("#{}", index + 1);
        let Some(table) = value.as_object() else {
            self.problems.push(Problem {
                shot: Some(label),
                field: "shot".into(),
                message: "must be a table".into(),
            });
            return None;
        };
        let before = self.problems.len();
        // The name first: every later problem is reported under it.
        let name = match table.get("name").map(|v| v.as_str()) {
            Some(Some(n)) if valid_name(n) => Some(n.to_string()),
            Some(_) => {
                self.push(&label, "name", "must be 1 to 64 letters, digits, '-', '_' or '.' (it names the output file), not starting with '.'");
                None
            }
            None => {
                self.push(&label, "name", "is required: it keys the shot in the journal, so a re-run finds it again even if shots are reordered");
                None
            }
        };
        let who = name.clone().map_or(label, |n| format!("\"{n}\""));
        if let Some(n) = &name
            && !self.names.insert(n.to_ascii_lowercase())
        {
            self.push(
                &who,
                "name",
                "is used by another shot; names must be unique",
            );
        }
        for key in table.keys() {
            if !SHOT_FIELDS.contains(&key.as_str()) {
                self.push(
                    &who,
                    key,
                    &format!("unknown field; shots take {}", SHOT_FIELDS.join(", ")),
                );
            }
        }
        let defaults = self.defaults;
        let field = |key: &str| table.get(key).or_else(|| defaults.get(key));
        let output = match table.get("output") {
            None => name.clone(),
            Some(Value::String(s)) if valid_name(s) => Some(s.clone()),
            Some(_) => {
                self.push(
                    &who,
                    "output",
                    "must be a file name stem: letters, digits, '-', '_' or '.'",
                );
                None
            }
        };
        if let Some(o) = &output
            && is_reserved(o)
        {
            self.push(
                &who,
                "output",
                &format!(
                    "{o:?} is reserved for the pipeline's own files ({}); give the shot another `output`",
                    RESERVED_STEMS.join(", ")
                ),
            );
        }
        if let Some(o) = &output
            && !self.outputs.insert(o.to_ascii_lowercase())
        {
            self.push(
                &who,
                "output",
                "is used by another shot; outputs would overwrite each other",
            );
        }
        let prompt = match table.get("prompt") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.push(&who, "prompt", "must be a string");
                None
            }
            None => {
                self.push(&who, "prompt", "is required");
                None
            }
        };
        let mode = field("mode").and_then(|v| {
            let mode = v.as_str().and_then(|s| parse_mode(&s.to_ascii_lowercase()));
            if mode.is_none() {
                self.push(&who, "mode", "must be one of auto, t2v, i2v, r2v");
            }
            mode
        });
        let aspect_ratio = self.string(
            &who,
            "aspect_ratio",
            field("aspect_ratio"),
            "such as \"16:9\"",
        );
        let resolution = self.string(&who, "resolution", field("resolution"), "such as \"720p\"");
        let model = self.string(&who, "model", field("model"), "such as \"happyhorse-1-1\"");
        let duration = field("duration").and_then(|v| match v.as_u64() {
            Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            None => {
                self.push(
                    &who,
                    "duration",
                    "must be a whole number of seconds, such as 5",
                );
                None
            }
        });
        let seed = field("seed").and_then(|v| match v.as_i64() {
            Some(n) => Some(n),
            None => {
                self.push(&who, "seed", "must be a whole number from 0 to 2147483647");
                None
            }
        });
        let watermark = field("watermark").and_then(|v| match v.as_bool() {
            Some(b) => Some(b),
            None => {
                self.push(&who, "watermark", "must be true or false");
                None
            }
        });
        let (image_urls, sources) = self.images(&who, field("images"));
        let shot = Shot {
            name: name?,
            output: output?,
            request: VideoRequest {
                model,
                prompt: prompt?,
                mode,
                images: image_urls,
                aspect_ratio,
                resolution,
                duration_seconds: duration,
                seed,
                watermark,
            },
            images: sources,
        };
        if self.problems.len() > before {
            // Still checked by the component, the fields that failed here left out, so the
            // rules only it knows (a seed's range, an inherited duration) are reported in the
            // same pass; never run.
            self.flawed.push(shot);
            return None;
        }
        Some(shot)
    }

    fn push(&mut self, who: &str, field: &str, message: &str) {
        self.problems.push(Problem {
            shot: Some(who.to_string()),
            field: field.to_string(),
            message: message.to_string(),
        });
    }

    fn string(
        &mut self,
        who: &str,
        key: &str,
        value: Option<&Value>,
        example: &str,
    ) -> Option<String> {
        match value {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.push(who, key, &format!("must be a string, {example}"));
                None
            }
        }
    }

    fn images(&mut self, who: &str, value: Option<&Value>) -> (Vec<String>, Vec<ImageSource>) {
        let entries: Vec<&Value> = match value {
            None => Vec::new(),
            Some(Value::String(_)) => vec![value.expect("matched")],
            Some(Value::Array(list)) => list.iter().collect(),
            Some(_) => {
                self.push(who, "images", "must be a list of file paths or URLs");
                return (Vec::new(), Vec::new());
            }
        };
        let mut urls = Vec::new();
        let mut sources = Vec::new();
        let mut local_bytes = 0u64;
        for (i, entry) in entries.into_iter().enumerate() {
            let field = format!("images[{i}]");
            let Some(entry) = entry.as_str() else {
                self.push(who, &field, "must be a file path or a URL");
                continue;
            };
            if images::is_url(entry) {
                urls.push(entry.to_string());
                sources.push(ImageSource::Url(entry.to_string()));
                continue;
            }
            let path = self.base.join(entry);
            let loaded = self
                .cache
                .entry(path.clone())
                .or_insert_with(|| images::load(&path))
                .clone();
            match loaded {
                Ok(image) => {
                    local_bytes += image.bytes;
                    urls.push(image.data_url);
                    sources.push(ImageSource::File {
                        path: entry.to_string(),
                        media_type: image.media_type,
                        bytes: image.bytes,
                        sha256: image.sha256,
                    });
                }
                Err(message) => self.push(who, &field, &message),
            }
        }
        if let Err(message) = images::check_shot_total(local_bytes) {
            self.push(who, "images", &message);
        }
        (urls, sources)
    }
}
