//! The sandbox every plugin runs in: what it may reach, what it can see, what it may spend.
//!
//! Deny by default: a plugin reaches only the API origin, sees only a placeholder for the key,
//! has no filesystem, sockets or inherited environment, and is bounded in memory, CPU, wall
//! time, response size and concurrent requests; all plugins share one request budget. A
//! [`SandboxPolicy`] (from a TOML file or CLI flags) widens these explicitly.

use crate::egress::budget::RequestBudget;
use crate::egress::{Credential, Origin, OutboundPolicy, RequestBounds};
use crate::plugin::{PluginLimits, PluginOptions};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The environment variable the component reads its key from.
pub const KEY_ENV: &str = happyhorse_core::limits::API_KEY_ENV;

/// The knobs, with safe defaults. Field names are the TOML keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SandboxPolicy {
    /// Origins plugins may reach besides the API's own (e.g. `https://cdn.example.com`).
    pub allow: Vec<String>,
    /// Largest linear memory of one plugin, MiB.
    pub max_memory_mib: u32,
    /// CPU time one call may use, ms (time spent waiting on the network or sleeping between
    /// polls does not count).
    pub max_cpu_ms_per_call: u64,
    /// Wall-clock bound on one call, seconds (a `wait` needs its poll deadline plus slack).
    pub call_timeout_secs: u64,
    /// Largest response body a plugin may receive, bytes.
    pub max_response_bytes: u64,
    /// Requests one plugin may have in flight at once.
    pub max_concurrent_requests: u32,
    /// Host objects one plugin may hold at once (WASI and WASI-HTTP resources: header sets,
    /// requests, bodies, streams, timers, …).
    pub max_host_resources: u32,
    /// Largest header set a plugin may build, bytes of names and values.
    pub max_header_bytes: u32,
    /// Largest single write into a request body, bytes; the host buffers at most two per
    /// body.
    pub max_request_body_chunk_bytes: u32,
    /// Most bytes a plugin may pass the host in one call (`validate`'s answer carries the
    /// request's images, so this bounds them too), and the most random bytes it may ask for
    /// at once.
    pub max_host_call_bytes: u32,
    /// The account's request budget per minute, shared by every plugin (0 = unlimited).
    pub requests_per_minute: u32,
    /// Largest burst the budget grants at once; beyond it, requests are paced out at the
    /// limit's rate (except those the pipeline's scheduler placed itself).
    pub burst: u32,
    /// Longest wait for the start of an answer to any plugin request, seconds, whatever the
    /// plugin asked for in its request options (it may ask for less).
    pub first_byte_timeout_secs: u64,
    /// Longest pause inside an answer's body, seconds, whatever the plugin asked for.
    pub between_bytes_timeout_secs: u64,
}

impl Default for SandboxPolicy {
    /// The plugin's limits from [`PluginLimits::default`] and the request bounds from
    /// `RequestBounds::default`, in the units the keys use: one home for each default.
    fn default() -> Self {
        let limits = PluginLimits::default();
        let narrow = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        SandboxPolicy {
            allow: Vec::new(),
            max_memory_mib: narrow(limits.max_memory_bytes >> 20),
            max_cpu_ms_per_call: u64::try_from(limits.max_cpu_per_call.as_millis())
                .unwrap_or(u64::MAX),
            call_timeout_secs: limits.call_timeout.as_secs(),
            max_response_bytes: crate::egress::DEFAULT_MAX_RESPONSE_BYTES,
            max_concurrent_requests: narrow(crate::egress::DEFAULT_MAX_CONCURRENT),
            max_host_resources: narrow(limits.max_host_resources),
            max_header_bytes: narrow(limits.max_header_bytes),
            max_request_body_chunk_bytes: narrow(limits.max_request_body_chunk_bytes),
            max_host_call_bytes: narrow(limits.max_host_call_bytes),
            requests_per_minute: 50,
            burst: 3,
            first_byte_timeout_secs: RequestBounds::default().first_byte.as_secs(),
            between_bytes_timeout_secs: RequestBounds::default().between_bytes.as_secs(),
        }
    }
}

impl SandboxPolicy {
    /// Read a policy from a TOML file; keys it does not set keep their defaults, unknown
    /// keys are refused (a typo must not silently leave a limit at its default).
    pub fn from_toml_file(path: &Path) -> Result<SandboxPolicy> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// `max-memory-mib` in bytes.
    pub fn max_memory_bytes(&self) -> usize {
        (self.max_memory_mib as usize) << 20
    }

    fn check(&self) -> Result<()> {
        if self.max_memory_mib == 0 || self.max_memory_mib > 4096 {
            bail!("max-memory-mib must be 1 to 4096");
        }
        if self.call_timeout_secs == 0 || self.max_cpu_ms_per_call == 0 {
            bail!("call-timeout-secs and max-cpu-ms-per-call must be positive");
        }
        if self.max_concurrent_requests == 0 {
            bail!("max-concurrent-requests must be at least 1");
        }
        if self.max_response_bytes < 1024 {
            bail!("max-response-bytes must be at least 1024");
        }
        for (key, secs) in [
            ("first-byte-timeout-secs", self.first_byte_timeout_secs),
            (
                "between-bytes-timeout-secs",
                self.between_bytes_timeout_secs,
            ),
        ] {
            if !(1..=3600).contains(&secs) {
                bail!("{key} must be 1 to 3600");
            }
        }
        // The component's own calls need a few dozen host objects, a few hundred header
        // bytes, and body writes up to the chunk size in one host call.
        if self.max_host_resources < 64 {
            bail!("max-host-resources must be at least 64");
        }
        if self.max_header_bytes < 1024 {
            bail!("max-header-bytes must be at least 1024");
        }
        if self.max_request_body_chunk_bytes < 1024 {
            bail!("max-request-body-chunk-bytes must be at least 1024");
        }
        if self.max_host_call_bytes < self.max_request_body_chunk_bytes.max(self.max_header_bytes) {
            bail!(
                "max-host-call-bytes must be at least max-request-body-chunk-bytes and max-header-bytes"
            );
        }
        Ok(())
    }
}

/// A configured sandbox. Every plugin created from it shares its request budget.
pub struct Sandbox {
    policy: SandboxPolicy,
    allowed: Vec<Origin>,
    credential: Arc<Credential>,
    budget: Arc<RequestBudget>,
}

impl Sandbox {
    /// A sandbox for plugins that talk to `api_base_url` with `api_key`.
    pub fn new(api_base_url: &str, api_key: String, policy: SandboxPolicy) -> Result<Sandbox> {
        policy.check()?;
        let api_origin = Origin::from_url(api_base_url)?;
        let mut allowed = vec![api_origin];
        for extra in &policy.allow {
            let origin =
                Origin::from_url(extra).with_context(|| format!("allow-list entry {extra:?}"))?;
            if !allowed.contains(&origin) {
                allowed.push(origin);
            }
        }
        let budget = Arc::new(RequestBudget::new(policy.requests_per_minute, policy.burst));
        Ok(Sandbox {
            credential: Arc::new(Credential::for_api(api_base_url, placeholder(), api_key)?),
            allowed,
            budget,
            policy,
        })
    }

    /// The same sandbox with its budget counted over `window` instead of the provider's
    /// minute: only for an emulator whose clock runs faster. Call before making plugins.
    pub fn with_rate_window(mut self, window: Duration) -> Sandbox {
        self.budget = Arc::new(RequestBudget::with_window(
            self.policy.requests_per_minute,
            self.policy.burst,
            window,
        ));
        self
    }

    /// The policy in force.
    pub fn policy(&self) -> &SandboxPolicy {
        &self.policy
    }

    /// The budget every plugin of this sandbox draws on.
    pub fn budget(&self) -> &Arc<RequestBudget> {
        &self.budget
    }

    /// What the plugin finds in `EMPIRIOLABS_API_KEY` instead of the key.
    pub fn placeholder(&self) -> &str {
        &self.credential.placeholder
    }

    /// The limits each plugin instance runs under.
    pub fn plugin_limits(&self) -> PluginLimits {
        let p = &self.policy;
        PluginLimits {
            max_memory_bytes: p.max_memory_bytes(),
            max_cpu_per_call: Duration::from_millis(p.max_cpu_ms_per_call),
            call_timeout: Duration::from_secs(p.call_timeout_secs),
            max_host_resources: p.max_host_resources as usize,
            max_header_bytes: p.max_header_bytes as usize,
            max_request_body_chunk_bytes: p.max_request_body_chunk_bytes as usize,
            max_host_call_bytes: p.max_host_call_bytes as usize,
        }
    }

    /// The most host memory one plugin can make the host hold, bytes (see
    /// [`PluginLimits::host_memory_bound`]).
    pub fn host_memory_bound(&self) -> u64 {
        self.plugin_limits()
            .host_memory_bound(self.policy.max_concurrent_requests as usize)
    }

    /// Options for one new plugin instance: its own concurrency cap, the shared budget.
    pub fn plugin_options(&self) -> PluginOptions {
        let policy = OutboundPolicy::allow(self.allowed.clone())
            .with_credential(self.credential.clone())
            .with_budget(self.budget.clone())
            .with_max_concurrent(self.policy.max_concurrent_requests as usize)
            .with_max_response_bytes(self.policy.max_response_bytes)
            .with_request_bounds(RequestBounds {
                first_byte: Duration::from_secs(self.policy.first_byte_timeout_secs),
                between_bytes: Duration::from_secs(self.policy.between_bytes_timeout_secs),
            });
        PluginOptions {
            env: vec![(KEY_ENV.to_string(), self.credential.placeholder.clone())],
            policy,
            limits: self.plugin_limits(),
        }
    }

    /// The effective policy, for `--verbose`.
    pub fn describe(&self) -> String {
        let p = &self.policy;
        let mut out = String::from("sandbox policy:\n");
        let origins: Vec<String> = self.allowed.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "  outbound allow-list: {}", origins.join(", "));
        let _ = writeln!(
            out,
            "  key: plugins see a placeholder; the real key is added only to `Bearer <placeholder>` on \
             POST {base}/v1/videos/generations and GET {base}/v1/jobs/{{id}} at {origin}; any other \
             request to that origin is refused",
            base = self.credential.base_path,
            origin = self.credential.origin
        );
        let _ = writeln!(out, "  filesystem, sockets, inherited environment: none");
        let _ = writeln!(
            out,
            "  per plugin: memory ≤ {} MiB, CPU ≤ {} ms and wall time ≤ {} s per call, responses ≤ {} bytes, ≤ {} requests in flight",
            p.max_memory_mib,
            p.max_cpu_ms_per_call,
            p.call_timeout_secs,
            p.max_response_bytes,
            p.max_concurrent_requests
        );
        let _ = writeln!(
            out,
            "  per request: an answer starts within {} s and never pauses longer than {} s (plugins may ask for less)",
            p.first_byte_timeout_secs, p.between_bytes_timeout_secs
        );
        let _ = writeln!(
            out,
            "  host memory per plugin: ≤ {} MiB in all (≤ {} host objects, headers ≤ {} bytes, body writes ≤ {} bytes, ≤ {} bytes per host call)",
            self.host_memory_bound().div_ceil(1 << 20),
            p.max_host_resources,
            p.max_header_bytes,
            p.max_request_body_chunk_bytes,
            p.max_host_call_bytes
        );
        let _ = write!(
            out,
            "  account budget (all plugins): {} requests/minute, bursts of {}",
            if p.requests_per_minute == 0 {
                "unlimited".to_string()
            } else {
                p.requests_per_minute.to_string()
            },
            self.budget.burst()
        );
        out
    }
}

/// An opaque, per-process placeholder: worthless anywhere but through this host.
fn placeholder() -> String {
    format!("hh-placeholder-{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_refuses_unknown_keys_and_keeps_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sandbox.toml");
        std::fs::write(
            &file,
            "allow = [\"https://cdn.example.com\"]\nmax-memory-mib = 32\n",
        )
        .unwrap();
        let policy = SandboxPolicy::from_toml_file(&file).unwrap();
        assert_eq!(policy.max_memory_mib, 32);
        assert_eq!(policy.requests_per_minute, 50);
        std::fs::write(&file, "max-memroy-mib = 32\n").unwrap();
        assert!(SandboxPolicy::from_toml_file(&file).is_err());
    }

    #[test]
    fn plugins_see_only_the_placeholder() {
        let sandbox = Sandbox::new(
            "https://api.empiriolabs.ai",
            "sk-real".into(),
            SandboxPolicy::default(),
        )
        .unwrap();
        let options = sandbox.plugin_options();
        assert_eq!(options.env.len(), 1);
        assert_eq!(options.env[0].0, KEY_ENV);
        assert!(options.env[0].1.starts_with("hh-placeholder-"));
        assert!(!format!("{options:?}").contains("sk-real"));
        assert!(!sandbox.describe().contains("sk-real"));
    }

    #[test]
    fn the_stated_host_memory_bound_follows_the_keys() {
        let bound = |policy: SandboxPolicy| {
            Sandbox::new("https://api.empiriolabs.ai", "sk".into(), policy)
                .unwrap()
                .host_memory_bound()
        };
        // The figure README.md and docs/sandbox.md give for the defaults.
        assert_eq!(bound(SandboxPolicy::default()), 119 << 20);
        let tight = SandboxPolicy {
            max_memory_mib: 16,
            max_host_call_bytes: 1 << 20,
            ..SandboxPolicy::default()
        };
        assert_eq!(bound(tight), 40 << 20);
        let too_small = SandboxPolicy {
            max_host_call_bytes: 4 << 10,
            ..SandboxPolicy::default()
        };
        assert!(Sandbox::new("https://api.empiriolabs.ai", "sk".into(), too_small).is_err());
    }
}
