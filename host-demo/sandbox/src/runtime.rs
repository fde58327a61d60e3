//! The Wasmtime engine, the on-disk cache of the precompiled component, and the
//! pre-instantiated component every plugin instance is created from.

use crate::contract::bindings::HappyhorsePre;
use crate::egress::connections::{self, Connections};
use crate::plugin::{Plugin, PluginOptions, PluginState};
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where precompiled components are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Use the pooling instance allocator: faster instantiation, address space reserved up
    /// front for `max_instances` (about 130 MiB each at the default 64 MiB memory cap). If
    /// the reservation fails (a virtual-memory ulimit, a small address space), the runtime
    /// falls back to the on-demand allocator and says so; [`Runtime::pooling`] tells which.
    pub pooling: bool,
    /// With `pooling`: how many instances may be live at once; one more is refused until
    /// another is dropped.
    pub max_instances: u32,
    /// Largest linear memory one instance may have, bytes (enforced again per store).
    pub max_memory_bytes: usize,
    /// Keep connections to allowed origins open this long after their last response, shared
    /// by every instance; `None` opens a new connection for every request.
    pub keep_alive_idle: Option<Duration>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: default_cache_dir(),
            pooling: true,
            max_instances: 1_000,
            max_memory_bytes: crate::plugin::PluginLimits::default().max_memory_bytes,
            keep_alive_idle: Some(connections::DEFAULT_IDLE_TIMEOUT),
        }
    }
}

/// The per-user cache directory for precompiled components.
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("happyhorse-host"))
}

/// A compiled, linked component ready to be instantiated many times.
pub struct Runtime {
    engine: Engine,
    component: Component,
    pre: HappyhorsePre<PluginState>,
    pooling: bool,
    connections: Option<Connections>,
    ticker_stop: Arc<AtomicBool>,
}

impl Runtime {
    /// Compile (or load from the cache) `wasm` and link it against WASI and WASI-HTTP.
    pub fn new(wasm: &[u8], options: &RuntimeOptions) -> Result<Runtime> {
        let (engine, pooling) = engine(options)?;
        let component = load_component(&engine, wasm, options.cache_dir.as_deref())?;
        let mut linker = Linker::<PluginState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        crate::http_linker::add_to_linker(&mut linker)?;
        let pre = HappyhorsePre::new(linker.instantiate_pre(&component)?)?;
        let connections = options
            .keep_alive_idle
            .map(|idle| Connections::new(idle, connections::DEFAULT_CONNECT_TIMEOUT))
            .transpose()?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), ticker_stop.clone());
        Ok(Runtime {
            engine,
            component,
            pre,
            pooling,
            connections,
            ticker_stop,
        })
    }

    /// The engine (shared by every instance).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether instances come from the pooling allocator (see [`RuntimeOptions::pooling`]).
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// The names of the interfaces the component imports (what a host must provide).
    pub fn imports(&self) -> Vec<String> {
        self.component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// A fresh, sandboxed instance. Each job gets its own: a trapped store is dead, and
    /// instances share nothing but the host's keep-alive connections (HTTP/1.1, one request
    /// at a time on each), so one misbehaving job cannot touch another.
    pub async fn instantiate(&self, mut options: PluginOptions) -> Result<Plugin> {
        if let Some(connections) = self.connections.as_ref()
            && !options.policy.has_connections()
        {
            options.policy = options.policy.with_connections(connections.clone());
        }
        Plugin::instantiate(&self.engine, &self.pre, options).await
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// The engine, and whether it pools instances.
fn engine(options: &RuntimeOptions) -> Result<(Engine, bool)> {
    if options.pooling {
        match Engine::new(&config(options, true)) {
            Ok(engine) => return Ok((engine, true)),
            Err(e) => tracing::warn!(
                "the pooling allocator could not reserve its memory ({e:#}); \
                 instantiating on demand instead"
            ),
        }
    }
    Ok((Engine::new(&config(options, false))?, false))
}

fn config(options: &RuntimeOptions, pooling: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Reserve only what an instance may use (64 MiB by default) instead of Wasmtime's 4 GiB
    // plus guard per memory: the compiled code then checks bounds explicitly, which costs
    // this component nothing measurable, and a pool of 1,000 instances reserves ~130 GiB
    // of address space instead of ~8 TiB. The artifact cache key includes these settings.
    let reservation = u64::try_from(options.max_memory_bytes).unwrap_or(u64::MAX);
    config.memory_reservation(reservation);
    config.memory_guard_size(64 << 10);
    config.memory_reservation_for_growth(0);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(options.max_instances)
            .total_core_instances(options.max_instances.saturating_mul(4))
            .total_memories(options.max_instances.saturating_mul(2))
            .total_tables(options.max_instances.saturating_mul(2))
            .total_stacks(options.max_instances)
            .max_memory_size(options.max_memory_bytes);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

fn spawn_epoch_ticker(engine: Engine, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(crate::plugin::EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .expect("spawning the epoch thread");
}

/// The cache file for `wasm` under this engine: a precompiled artifact only loads into an
/// engine with the same version and settings, so both are part of the key.
fn cache_path(engine: &Engine, wasm: &[u8], dir: &Path) -> PathBuf {
    let mut settings = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut settings);
    let mut key = Sha256::new();
    key.update(wasm);
    key.update(settings.finish().to_le_bytes());
    key.update(env!("CARGO_PKG_VERSION").as_bytes());
    // The first 128 bits of the digest name the file.
    let name = format!("{:x}", key.finalize());
    dir.join(format!("{}.cwasm", &name[..32]))
}

/// Load the precompiled component from the cache, or compile and cache it.
pub fn load_component(engine: &Engine, wasm: &[u8], cache_dir: Option<&Path>) -> Result<Component> {
    let Some(dir) = cache_dir else {
        return compile(engine, wasm);
    };
    let path = cache_path(engine, wasm, dir);
    if path.exists() {
        // SAFETY: the file was written by `Component::serialize` of this same host version
        // and engine settings (both in its name), into a directory this user owns.
        #[allow(unsafe_code)]
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unusable cache entry: {e:#}")
            }
        }
    }
    let component = compile(engine, wasm)?;
    if let Err(e) = write_cache(&component, dir, &path) {
        tracing::warn!(dir = %dir.display(), "could not cache the compiled component: {e:#}");
    }
    Ok(component)
}

fn compile(engine: &Engine, wasm: &[u8]) -> Result<Component> {
    Component::new(engine, wasm)
        .map_err(anyhow::Error::from)
        .context("compiling the component")
}

fn write_cache(component: &Component, dir: &Path, path: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize()?;
    // Write then rename, so a concurrent reader never sees half a file.
    let tmp = tempfile_in(dir)?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn tempfile_in(dir: &Path) -> Result<PathBuf> {
    let unique = format!(
        ".tmp-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    Ok(dir.join(unique))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_by_default_within_a_bounded_reservation() {
        let (_engine, pooling) = engine(&RuntimeOptions::default()).unwrap();
        assert!(pooling);
    }

    #[test]
    fn falls_back_to_on_demand_when_the_pool_cannot_be_reserved() {
        // 2 × 10⁶ memories of 4 GiB: far more address space than x86-64 or AArch64 have.
        let options = RuntimeOptions {
            max_instances: 1_000_000,
            max_memory_bytes: 4 << 30,
            ..RuntimeOptions::default()
        };
        let (_engine, pooling) = engine(&options).unwrap();
        assert!(!pooling);
    }
}
