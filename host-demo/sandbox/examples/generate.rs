//! One generation, sandboxed, against a local emulator (no key, nothing billed):
//! `cargo run -p happyhorse-sandbox --example generate`.
use happyhorse_emulator::{Emulator, EmulatorConfig};
use happyhorse_sandbox::api::{ClientConfig, VideoRequest};
use happyhorse_sandbox::{Runtime, RuntimeOptions, Sandbox, SandboxPolicy};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let emulator = Emulator::start(EmulatorConfig::default()).await?;
    let base_url = emulator.base_url();
    // The plugin may reach this origin alone; the key stays with the host.
    let sandbox = Sandbox::new(&base_url, "emulator-key".into(), SandboxPolicy::default())?;
    let runtime = Runtime::new(video_gen_artifacts::HAPPYHORSE, &RuntimeOptions::default())?;
    let mut plugin = runtime.instantiate(sandbox.plugin_options()).await?;
    let config = ClientConfig {
        base_url: Some(base_url),
        ..Default::default()
    };
    let request = VideoRequest {
        prompt: "A horse gallops along a beach at dawn".into(),
        duration_seconds: Some(3),
        ..Default::default()
    };
    // The outer `?` is the plugin's failure (a trap, a time-out); the inner result the API's.
    match plugin.generate(&config, &request).await? {
        Ok(done) => println!("{} finished: {:?}", done.job_id, done.outputs),
        Err(error) => println!("the API said no: {error:?}"),
    }
    Ok(())
}
