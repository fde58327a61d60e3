//! The host's keep-alive connections: jobs share them, and reusing one never turns a
//! submit that was not sent into one whose fate is unknown.

use happyhorse_emulator::Emulator;
use happyhorse_sandbox::api::{Error, TransportKind};
use happyhorse_sandbox::{Runtime, RuntimeOptions};
use video_gen_tests::*;

type Test = Result<(), Box<dyn std::error::Error>>;

/// A plugin of `runtime` allowed to reach `base_url` only.
async fn plugin_for(runtime: &Runtime, base_url: &str) -> happyhorse_sandbox::Plugin {
    runtime
        .instantiate(options_allowing(base_url))
        .await
        .expect("the plugin instantiates")
}

/// Three jobs, one after another, each in a fresh instance of `runtime`.
async fn three_jobs(runtime: &Runtime, emu: &Emulator) -> Test {
    for n in 0..3 {
        let mut plugin = plugin_for(runtime, &emu.base_url()).await;
        let result = plugin
            .generate(&config(emu, 10_000), &t2v(&format!("job {n}")))
            .await??;
        assert_eq!(result.outputs.len(), 1);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_in_fresh_instances_share_keep_alive_connections() -> Test {
    let emu = emulator(fast()).await;
    three_jobs(runtime(), &emu).await?;
    // Each submit opens a connection of its own (see the next test); the polls share the
    // pool, which may open one spare while a connection is on its way back to it.
    let polls = emu.requests().len() - 3;
    let for_polls = emu.connections_accepted() - 3;
    assert!(polls >= 6, "{polls} polls");
    assert!(for_polls <= 2, "{for_polls} connections for {polls} polls");

    // The same jobs with keep-alive off: a connection per request, as Wasmtime's default
    // sender does — the comparison that shows the count above is the pool's doing.
    let fresh = Runtime::new(
        video_gen_artifacts::HAPPYHORSE,
        &RuntimeOptions {
            keep_alive_idle: None,
            cache_dir: runtime_options().cache_dir,
            ..RuntimeOptions::default()
        },
    )?;
    let emu = emulator(fast()).await;
    three_jobs(&fresh, &emu).await?;
    assert_eq!(emu.connections_accepted(), emu.requests().len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_the_server_closed_leaves_a_submit_unsent() -> Test {
    let emu = emulator(fast()).await;
    let base = emu.base_url();
    let mut plugin = plugin_for(runtime(), &base).await;
    plugin
        .generate(&config(&emu, 10_000), &t2v("warm"))
        .await??;
    let mut cfg = config(&emu, 1_000);
    // A submit never rides the pooled connection the polls left idle: it opens its own.
    let before = emu.connections_accepted();
    plugin.submit(&cfg, &t2v("own connection")).await??;
    assert_eq!(emu.connections_accepted(), before + 1);
    // The server goes away while the pool holds a connection to it: the next submit must be
    // refused as never sent (safe to resend), not reported as a submit of unknown fate.
    emu.shutdown().await;
    match plugin.submit(&cfg, &t2v("after")).await? {
        Err(Error::TransportError(t)) => assert_eq!(t.kind, TransportKind::Connect, "{t:?}"),
        other => panic!("{other:?}"),
    }
    // And a server back on the same port is reached on a new connection.
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse()?;
    let emu = Emulator::start_on(addr, fast()).await?;
    cfg.base_url = Some(emu.base_url());
    plugin.submit(&cfg, &t2v("again")).await??;
    assert_eq!((emu.jobs_created(), emu.connections_accepted()), (1, 1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_origin_that_does_not_speak_tls_is_a_tls_error_before_sending() -> Test {
    let emu = emulator(fast()).await;
    let https = emu.base_url().replacen("http://", "https://", 1);
    let mut plugin = plugin_for(runtime(), &https).await;
    let mut cfg = config(&emu, 1_000);
    cfg.base_url = Some(https);
    match plugin.submit(&cfg, &t2v("x")).await? {
        Err(Error::TransportError(t)) => assert_eq!(t.kind, TransportKind::Tls, "{t:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(emu.jobs_created(), 0);
    Ok(())
}
