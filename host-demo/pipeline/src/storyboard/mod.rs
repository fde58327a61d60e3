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

mod names;
mod read;
#[cfg(test)]
mod tests;

use anyhow::{Context, Result};
use happyhorse_sandbox::api::{Mode, ResolutionRate, VideoRequest};
use names::stem_collisions;
pub use names::{output_name_problem, taken_by_output};
use read::{ShotReader, defaults, run_settings, shot_list};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

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
    /// A local file, sent as a data URL (see [`request_image`](crate::request_image)).
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
    /// Shots with problems of their own, as far as they could be read (a field that failed
    /// left out): the component checks them too, so every problem of a shot is reported in
    /// one pass; they are never run.
    pub flawed: Vec<Shot>,
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
            flawed: Vec::new(),
        };
        let shots: Vec<Shot> = listed
            .iter()
            .enumerate()
            .filter_map(|(i, v)| reader.shot(i, v))
            .collect();
        let flawed = std::mem::take(&mut reader.flawed);
        problems.extend(stem_collisions(&shots));
        Ok(Storyboard {
            path: path.to_path_buf(),
            settings,
            shots,
            listed: listed.len(),
            flawed,
            problems,
        })
    }

    /// Where this storyboard's outputs go (see [`output_dir`]).
    pub fn output_dir(&self, out_root: Option<&Path>) -> PathBuf {
        resolve_output(&self.path, &self.settings, out_root)
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
