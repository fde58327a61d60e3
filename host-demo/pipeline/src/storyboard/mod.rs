//! Reading a storyboard: the shots to generate and the run's settings.
//!
//! TOML is the default format; a file ending in `.json` is read as JSON with the same
//! structure. The file is read into a generic tree first and every field is then checked by
//! hand, so that *every* problem is reported at once, each with its shot and field (a typed
//! deserializer stops at the first).
//!
//! ```toml
//! [run]                  # optional
//! concurrency = 4        # shots in flight at once
//! max_cost = 10.0        # refuse to start when the estimate is higher (the rate card's currency)
//! output = "out/trailer" # relative to this file; default: <--out-dir>/<this file's stem>
//! rates = { "720p" = 0.14, "1080p" = 0.18 }  # price per second, replacing the built-in card
//!
//! [defaults]             # optional: any shot field but name, output and prompt
//! resolution = "720p"
//!
//! [[shot]]
//! name = "opening"       # required, unique: the journal's key and the file name
//! prompt = "A horse gallops along a beach at sunset."
//! mode = "t2v"           # auto | t2v | i2v | r2v
//! images = ["refs/horse.png", "https://example.com/rider.jpg"]  # local files or URLs
//! aspect_ratio = "16:9"
//! duration = 5           # seconds
//! seed = 42
//! watermark = false
//! model = "happyhorse-1-1"
//! output = "01-opening"  # file name stem (default: name)
//! ```
//!
//! Ranges and combinations (duration 3–15, one image for i2v, …) are not checked here: the
//! component's `validate` is the one authority on them.

use super::images::{self, LocalImage};
use crate::api::{Mode, ResolutionRate, VideoRequest};
use anyhow::{Context, Result};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// Fields a shot may set.
const SHOT_FIELDS: &[&str] = &[
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
const PER_SHOT_ONLY: &[&str] = &["name", "output", "prompt"];
/// Fields of `[run]`.
const RUN_FIELDS: &[&str] = &["concurrency", "max_cost", "output", "rates"];
/// Most shots run at once that `concurrency` may ask for.
pub const MAX_CONCURRENCY: usize = 64;

/// One problem found in a storyboard: where, and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The shot at fault (its name, or `#n` when it has no usable name); `None` for the file
    /// itself, `[run]` or `[defaults]`.
    pub shot: Option<String>,
    /// The field at fault, as the storyboard spells it (or the component's wire name, such as
    /// `image[0]`, for a rule the component checks).
    pub field: String,
    /// A sentence for a person.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.shot {
            Some(shot) => write!(f, "shot {shot}, {}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// Settings that apply to the whole run.
#[derive(Debug, Clone, Default)]
pub struct RunSettings {
    /// Shots in flight at once.
    pub concurrency: Option<usize>,
    /// Refuse to start when the estimated total is higher, in micro-units.
    pub max_cost_micros: Option<u64>,
    /// Output folder, already resolved against the storyboard's folder.
    pub output: Option<PathBuf>,
    /// Per-second prices overriding the component's built-in rate card.
    pub rates: Option<Vec<ResolutionRate>>,
}

/// Where a reference image comes from; what the journal and manifest record instead of the
/// image's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// Sent as written: an `http(s)` URL, or a `data:` URL given inline.
    Url(String),
    /// A local file, sent as a data URL (see [`request_image`](crate::pipeline::request_image)).
    File {
        /// The path as the storyboard wrote it.
        path: String,
        /// Its media type.
        media_type: &'static str,
        /// Its size.
        bytes: u64,
        /// Its SHA-256, hex.
        sha256: String,
    },
}

impl ImageSource {
    /// A JSON description for the journal and the manifest: never the bytes themselves.
    pub fn describe(&self) -> Value {
        match self {
            ImageSource::Url(url) if url.len() > 200 => {
                // An inline data URL: its head and size say enough.
                serde_json::json!({ "url": format!("{}…", &url[..url.floor_char_boundary(60)]), "chars": url.len() })
            }
            ImageSource::Url(url) => serde_json::json!({ "url": url }),
            ImageSource::File {
                path,
                media_type,
                bytes,
                sha256,
            } => serde_json::json!({
                "file": path, "media_type": media_type, "bytes": bytes, "sha256": sha256,
            }),
        }
    }
}

/// One shot, ready for the component's `validate`.
#[derive(Debug, Clone)]
pub struct Shot {
    /// Unique name: the journal's key.
    pub name: String,
    /// File name stem of its outputs.
    pub output: String,
    /// The request, images already turned into what is sent.
    pub request: VideoRequest,
    /// Where each of `request.images` came from.
    pub images: Vec<ImageSource>,
}

/// A storyboard as read: the shots that could be built, and every problem found.
#[derive(Debug, Clone)]
pub struct Storyboard {
    /// The file it was read from.
    pub path: PathBuf,
    /// Run-wide settings.
    pub settings: RunSettings,
    /// The shots that were read without problems, in file order.
    pub shots: Vec<Shot>,
    /// How many shots the file lists, including those with problems.
    pub listed: usize,
    /// Every problem found; the run starts only when there is none.
    pub problems: Vec<Problem>,
}

/// The storyboard format, by file extension: `.json` is JSON, anything else TOML.
fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// Read the file as a generic tree. Fails only when the file cannot be read or parsed at all.
fn read_tree(path: &Path) -> Result<Map<String, Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let tree: Value = if is_json(path) {
        serde_json::from_str(&text)
            .with_context(|| format!("parsing {} as JSON", path.display()))?
    } else {
        toml::from_str(&text).with_context(|| format!("parsing {} as TOML", path.display()))?
    };
    match tree {
        Value::Object(map) => Ok(map),
        _ => anyhow::bail!("{}: the top level must be a table/object", path.display()),
    }
}

/// The default output root of a storyboard: `out` in the storyboard's own folder (made
/// absolute). Never the working directory: two runs of one storyboard started from
/// different folders must find the same journal, or the second would pay again.
pub fn default_out_root(path: &Path) -> PathBuf {
    let parent = path.parent().unwrap_or(Path::new(""));
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    std::path::absolute(parent)
        .unwrap_or_else(|_| parent.to_path_buf())
        .join("out")
}

/// Where a storyboard's outputs (and journal) go: its `[run] output`, resolved against the
/// storyboard's folder, or else `<root>/<the file's stem>`, `root` being `out_root` (an
/// explicit `--out-dir`) or `default_out_root`.
pub fn output_dir(path: &Path, out_root: Option<&Path>) -> Result<PathBuf> {
    let tree = read_tree(path)?;
    let mut problems = Vec::new();
    let settings = run_settings(&tree, path, &mut problems);
    if let Some(p) = problems.first() {
        anyhow::bail!("{}: {p}", path.display());
    }
    Ok(resolve_output(path, &settings, out_root))
}

fn resolve_output(path: &Path, settings: &RunSettings, out_root: Option<&Path>) -> PathBuf {
    settings.output.clone().unwrap_or_else(|| {
        let stem = path
            .file_stem()
            .map_or_else(|| "storyboard".into(), |s| s.to_string_lossy().into_owned());
        out_root
            .map_or_else(|| default_out_root(path), Path::to_path_buf)
            .join(stem)
    })
}

impl Storyboard {
    /// Read and check a storyboard file, loading its local images. An `Err` means the file
    /// could not be read or parsed at all; problems with its content are in `problems`.
    pub fn load(path: &Path) -> Result<Storyboard> {
        let tree = read_tree(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        for key in tree.keys() {
            if !matches!(key.as_str(), "run" | "defaults" | "shot" | "shots") {
                problems.push(Problem {
                    shot: None,
                    field: key.clone(),
                    message: "unknown section; expected [run], [defaults] and [[shot]]".into(),
                });
            }
        }
        let settings = run_settings(&tree, path, &mut problems);
        let defaults = defaults(&tree, &mut problems);
        let listed = shot_list(&tree, &mut problems);
        let mut reader = ShotReader {
            base,
            defaults: &defaults,
            problems: &mut problems,
            cache: HashMap::new(),
            names: HashSet::new(),
            outputs: HashSet::new(),
        };
        let shots: Vec<Shot> = listed
            .iter()
            .enumerate()
            .filter_map(|(i, v)| reader.shot(i, v))
            .collect();
        problems.extend(stem_collisions(&shots));
        Ok(Storyboard {
            path: path.to_path_buf(),
            settings,
            shots,
            listed: listed.len(),
            problems,
        })
    }

    /// Where this storyboard's outputs go (see [`output_dir`]).
    pub fn output_dir(&self, out_root: Option<&Path>) -> PathBuf {
        resolve_output(&self.path, &self.settings, out_root)
    }
}

fn run_settings(
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

fn defaults(tree: &Map<String, Value>, problems: &mut Vec<Problem>) -> Map<String, Value> {
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

fn shot_list(tree: &Map<String, Value>, problems: &mut Vec<Problem>) -> Vec<Value> {
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

fn general(field: &str, message: &str) -> Problem {
    Problem {
        shot: None,
        field: field.to_string(),
        message: message.to_string(),
    }
}

/// Output stems the pipeline keeps for its own files in the output folder (`journal.sqlite`,
/// `journal.lock`, `manifest.json`, `index.html` and their temporary files). Outputs are
/// always saved with a video extension, so they could not overwrite these anyway; refusing
/// the stems keeps the folder unambiguous for people too.
pub const RESERVED_STEMS: &[&str] = &["journal", "manifest", "index"];

fn is_reserved(stem: &str) -> bool {
    let lower = stem.to_ascii_lowercase();
    RESERVED_STEMS
        .iter()
        .any(|r| lower == *r || lower.starts_with(&format!("{r}.")))
}

/// Whether `stem` is what a job with several outputs names its files after `base`:
/// `<base>-<n>` (compared without case, as some file systems do).
fn numbered_from(stem: &str, base: &str) -> bool {
    let (stem, base) = (stem.to_ascii_lowercase(), base.to_ascii_lowercase());
    stem.strip_prefix(&base)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// Shots whose files could overwrite another's: a job may return several outputs, saved as
/// `<output>-1`, `<output>-2`, …, so shot `clip` and shot `clip-1` would meet. Stems are
/// unique already; this refuses the numbered forms.
fn stem_collisions(shots: &[Shot]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for shot in shots {
        if let Some(other) = shots
            .iter()
            .find(|o| o.name != shot.name && numbered_from(&shot.output, &o.output))
        {
            problems.push(Problem {
                shot: Some(format!("\"{}\"", shot.name)),
                field: "output".into(),
                message: format!(
                    "{:?} is how shot \"{}\" names its files when its job returns several outputs ({}-1, {}-2, …); give one of them another `output`",
                    shot.output, other.name, other.output, other.output
                ),
            });
        }
    }
    problems
}

/// Whether `s` is usable as a shot name and a file name on every common file system.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

struct ShotReader<'a> {
    base: &'a Path,
    defaults: &'a Map<String, Value>,
    problems: &'a mut Vec<Problem>,
    /// Images used by several shots are read once.
    cache: HashMap<PathBuf, Result<LocalImage, String>>,
    /// Lowercased, since names become file names and some file systems ignore case.
    names: HashSet<String>,
    outputs: HashSet<String>,
}

impl ShotReader<'_> {
    fn shot(&mut self, index: usize, value: &Value) -> Option<Shot> {
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
        if self.problems.len() > before {
            return None;
        }
        Some(Shot {
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
        })
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

/// The modes' names in storyboards, journals and reports: one table, read both ways.
const MODE_NAMES: [(Mode, &str); 4] = [
    (Mode::Auto, "auto"),
    (Mode::T2v, "t2v"),
    (Mode::I2v, "i2v"),
    (Mode::R2v, "r2v"),
];

/// A mode's name; no mode is `auto`, as the provider reads it.
pub(crate) fn mode_name(mode: Option<Mode>) -> &'static str {
    let mode = mode.unwrap_or(Mode::Auto);
    MODE_NAMES
        .iter()
        .find(|(m, _)| *m == mode)
        .map_or("auto", |(_, name)| name)
}

/// The mode a (lower-case) name means, if any.
pub(crate) fn parse_mode(name: &str) -> Option<Mode> {
    MODE_NAMES
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(mode, _)| *mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn defaults_apply_and_shots_override_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.png"), b"\x89PNG\r\n\x1a\nxx").unwrap();
        let path = write(
            dir.path(),
            "sb.toml",
            r#"
            [run]
            concurrency = 2
            max_cost = 3.5
            output = "clips"
            [defaults]
            resolution = "1080p"
            duration = 8
            [[shot]]
            name = "one"
            prompt = "p1"
            [[shot]]
            name = "two"
            prompt = "p2"
            mode = "i2v"
            images = ["a.png"]
            resolution = "720p"
            output = "second"
            "#,
        );
        let sb = Storyboard::load(&path).unwrap();
        assert_eq!(sb.problems, vec![]);
        assert_eq!(sb.settings.concurrency, Some(2));
        assert_eq!(sb.settings.max_cost_micros, Some(3_500_000));
        assert_eq!(
            sb.output_dir(Some(Path::new("out"))),
            dir.path().join("clips")
        );
        assert_eq!(sb.shots[0].request.resolution.as_deref(), Some("1080p"));
        assert_eq!(sb.shots[0].request.duration_seconds, Some(8));
        assert_eq!(sb.shots[0].output, "one");
        assert_eq!(sb.shots[1].request.resolution.as_deref(), Some("720p"));
        assert_eq!(sb.shots[1].output, "second");
        assert!(sb.shots[1].request.images[0].starts_with("data:image/png;base64,"));
        assert!(
            matches!(&sb.shots[1].images[0], ImageSource::File { path, .. } if path == "a.png")
        );
    }

    #[test]
    fn json_is_accepted_and_the_default_output_is_named_after_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "board.json",
            r#"{"shots":[{"name":"a","prompt":"p","images":["https://x.example/i.png"],"mode":"i2v"}]}"#,
        );
        let sb = Storyboard::load(&path).unwrap();
        assert_eq!(sb.problems, vec![]);
        assert_eq!(sb.shots[0].request.images, vec!["https://x.example/i.png"]);
        assert_eq!(
            sb.output_dir(Some(Path::new("out"))),
            Path::new("out/board")
        );
        // Without --out-dir: next to the storyboard, whatever the working directory.
        let expected = std::path::absolute(dir.path()).unwrap().join("out/board");
        assert_eq!(sb.output_dir(None), expected);
        assert_eq!(output_dir(&path, None).unwrap(), expected);
    }

    #[test]
    fn outputs_that_could_overwrite_each_other_or_the_pipelines_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "sb.toml",
            r#"
            [[shot]]
            name = "clip"
            prompt = "p"
            [[shot]]
            name = "clip-1"
            prompt = "p"
            [[shot]]
            name = "Index"
            prompt = "p"
            [[shot]]
            name = "other"
            output = "journal.lock"
            prompt = "p"
            [[shot]]
            name = "fine"
            output = "clip-one"
            prompt = "p"
            "#,
        );
        let sb = Storyboard::load(&path).unwrap();
        let refused: Vec<(Option<&str>, &str)> = sb
            .problems
            .iter()
            .map(|p| (p.shot.as_deref(), p.field.as_str()))
            .collect();
        assert_eq!(
            refused,
            vec![
                (Some("\"Index\""), "output"),
                (Some("\"other\""), "output"),
                (Some("\"clip-1\""), "output"),
            ],
            "{:#?}",
            sb.problems
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_shot_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "sb.toml",
            r#"
            [run]
            concurrency = 0
            colour = "blue"
            [defaults]
            prompt = "x"
            [[shot]]
            prompt = "no name"
            [[shot]]
            name = "dup"
            prompt = "p"
            duration = 5.5
            [[shot]]
            name = "dup"
            prompt = 3
            mode = "sideways"
            images = ["missing.png"]
            sead = 1
            "#,
        );
        let sb = Storyboard::load(&path).unwrap();
        let seen: Vec<(Option<&str>, &str)> = sb
            .problems
            .iter()
            .map(|p| (p.shot.as_deref(), p.field.as_str()))
            .collect();
        for expected in [
            (None, "run.concurrency"),
            (None, "run.colour"),
            (None, "defaults.prompt"),
            (Some("#1"), "name"),
            (Some("\"dup\""), "duration"),
            (Some("\"dup\""), "name"),
            (Some("\"dup\""), "prompt"),
            (Some("\"dup\""), "mode"),
            (Some("\"dup\""), "images[0]"),
            (Some("\"dup\""), "sead"),
        ] {
            assert!(
                seen.contains(&expected),
                "{expected:?} missing from {seen:?}"
            );
        }
        assert!(sb.shots.is_empty());
        assert_eq!(sb.listed, 3);
    }
}
