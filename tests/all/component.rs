//! The real component in the real host against the emulator: every test also counts what
//! reached the wire, because an extra submit is an extra bill.

use happyhorse_emulator::{EmulatorConfig, Fault, Route, StatusStyle};
use happyhorse_sandbox::PluginFailure;
use happyhorse_sandbox::api::{Error, JobState, Mode, TransportKind, VideoRequest};
use std::time::{Duration, Instant};
use video_gen_tests::*;

type Test = Result<(), Box<dyn std::error::Error>>;

fn image(n: usize) -> String {
    format!("https://images.example.com/ref-{n}.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_to_video_with_every_parameter_reaches_the_wire_and_downloads() -> Test {
    let emu = emulator(fast()).await;
    let mut plugin = plugin(&emu).await;
    let request = VideoRequest {
        model: Some("happyhorse-1-1".into()),
        mode: Some(Mode::T2v),
        aspect_ratio: Some("9:16".into()),
        resolution: Some("1080p".into()),
        duration_seconds: Some(12),
        seed: Some(2_147_483_647),
        watermark: Some(true),
        ..t2v("A horse gallops along a beach at sunset.")
    };
    let result = plugin.generate(&config(&emu, 10_000), &request).await??;

    let bodies = submit_bodies(&emu);
    assert_eq!(bodies.len(), 1);
    let body = &bodies[0];
    assert_eq!(body["model"], "happyhorse-1-1");
    assert_eq!(body["prompt"], "A horse gallops along a beach at sunset.");
    assert_eq!(body["mode"], "t2v");
    assert_eq!(body["aspect_ratio"], "9:16");
    assert_eq!(body["resolution"], "1080p");
    assert_eq!(body["duration"], 12);
    assert_eq!(body["seed"], 2_147_483_647i64);
    assert_eq!(body["watermark"], true);
    assert!(body.get("image").is_none());
    assert_eq!(emu.jobs_created(), 1);

    assert_eq!(result.outputs.len(), 1);
    let video = reqwest::get(&result.outputs[0]).await?.bytes().await?;
    assert_eq!(&video[4..8], b"ftyp", "the output is an MP4");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_are_filled_in_and_sent() -> Test {
    let emu = emulator(fast()).await;
    let mut plugin = plugin(&emu).await;
    plugin
        .generate(&config(&emu, 10_000), &t2v("A quiet harbour at dawn."))
        .await??;
    let body = &submit_bodies(&emu)[0];
    assert_eq!(body["mode"], "auto");
    assert_eq!(body["aspect_ratio"], "16:9");
    assert_eq!(body["resolution"], "720p");
    assert_eq!(body["duration"], 5);
    assert_eq!(body["watermark"], false);
    assert!(body.get("seed").is_none(), "no seed unless asked for");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_to_video_drops_aspect_ratio_with_a_warning() -> Test {
    let emu = emulator(fast()).await;
    let mut plugin = plugin(&emu).await;
    let request = VideoRequest {
        mode: Some(Mode::I2v),
        images: vec![image(1)],
        aspect_ratio: Some("4:3".into()),
        ..t2v("The horse in the picture shakes its mane.")
    };
    let validated = plugin.validate(&request).await??;
    assert_eq!(validated.request.aspect_ratio, None);
    assert_eq!(validated.warnings.len(), 1);
    assert_eq!(validated.warnings[0].field, "aspect_ratio");

    plugin.generate(&config(&emu, 10_000), &request).await??;
    let body = &submit_bodies(&emu)[0];
    assert_eq!(body["mode"], "i2v");
    assert_eq!(body["image"], image(1));
    assert!(body.get("aspect_ratio").is_none(), "i2v follows the image");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_to_video_sends_every_image_in_order() -> Test {
    let emu = emulator(fast()).await;
    let mut plugin = plugin(&emu).await;
    let images: Vec<String> = (1..=9).map(image).collect();
    let request = VideoRequest {
        mode: Some(Mode::R2v),
        images: images.clone(),
        aspect_ratio: Some("1:1".into()),
        ..t2v("character1 greets character9 in a sunlit stable.")
    };
    plugin.generate(&config(&emu, 10_000), &request).await??;
    let body = &submit_bodies(&emu)[0];
    assert_eq!(body["mode"], "r2v");
    assert_eq!(body["image"], serde_json::json!(images));
    assert_eq!(body["aspect_ratio"], "1:1");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_validation_rule_is_refused_before_anything_is_sent() -> Test {
    let emu = emulator(fast()).await;
    let mut plugin = plugin(&emu).await;
    let base = t2v("A horse.");
    let cases: Vec<(&str, VideoRequest)> = vec![
        ("prompt", t2v("   ")),
        ("prompt", t2v(&"é".repeat(2_501))),
        (
            "duration",
            VideoRequest {
                duration_seconds: Some(2),
                ..base.clone()
            },
        ),
        (
            "duration",
            VideoRequest {
                duration_seconds: Some(16),
                ..base.clone()
            },
        ),
        (
            "seed",
            VideoRequest {
                seed: Some(-1),
                ..base.clone()
            },
        ),
        (
            "seed",
            VideoRequest {
                seed: Some(2_147_483_648),
                ..base.clone()
            },
        ),
        (
            "aspect_ratio",
            VideoRequest {
                aspect_ratio: Some("21:9".into()),
                ..base.clone()
            },
        ),
        (
            "resolution",
            VideoRequest {
                resolution: Some("4k".into()),
                ..base.clone()
            },
        ),
        (
            "model",
            VideoRequest {
                model: Some("".into()),
                ..base.clone()
            },
        ),
        (
            "image",
            VideoRequest {
                mode: Some(Mode::I2v),
                ..base.clone()
            },
        ),
        (
            "image",
            VideoRequest {
                mode: Some(Mode::I2v),
                images: vec![image(1), image(2)],
                ..base.clone()
            },
        ),
        (
            "image",
            VideoRequest {
                mode: Some(Mode::R2v),
                ..base.clone()
            },
        ),
        (
            "image",
            VideoRequest {
                mode: Some(Mode::R2v),
                images: (1..=10).map(image).collect(),
                ..base.clone()
            },
        ),
        (
            "image",
            VideoRequest {
                mode: Some(Mode::T2v),
                images: vec![image(1)],
                ..base.clone()
            },
        ),
        (
            "image[0]",
            VideoRequest {
                mode: Some(Mode::I2v),
                images: vec!["ftp://x/y.png".into()],
                ..base.clone()
            },
        ),
        (
            "prompt",
            VideoRequest {
                mode: Some(Mode::R2v),
                images: (1..=9).map(image).collect(),
                ..t2v("character10 waves.")
            },
        ),
    ];
    for (field, request) in cases {
        let validated = plugin.validate(&request).await?;
        let submitted = plugin.submit(&config(&emu, 1_000), &request).await?;
        for outcome in [validated.map(|_| ()), submitted.map(|_| ())] {
            match outcome {
                Err(Error::PermanentInvalidRequest(v)) => assert!(
                    v.iter().any(|v| v.field == field),
                    "expected a violation on {field}, got {v:?}"
                ),
                other => panic!("{field}: expected invalid request, got {other:?}"),
            }
        }
    }
    assert!(
        emu.requests().is_empty(),
        "an invalid request reached the network"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_violations_are_reported_at_once() -> Test {
    let emu = emulator(fast()).await;
    let mut plugin = plugin(&emu).await;
    let request = VideoRequest {
        duration_seconds: Some(20),
        seed: Some(-5),
        resolution: Some("480p".into()),
        ..t2v("")
    };
    let Err(Error::PermanentInvalidRequest(v)) = plugin.validate(&request).await? else {
        panic!("expected violations");
    };
    let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
    for field in ["prompt", "duration", "seed", "resolution"] {
        assert!(fields.contains(&field), "{field} missing from {fields:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_is_estimated_offline_with_overridable_rates() -> Test {
    let emu = emulator(fast()).await;
    let mut plugin = plugin(&emu).await;
    let default = plugin.estimate_cost(&t2v("x"), None).await??;
    assert_eq!((default.billed_seconds, default.total_micros), (5, 700_000));
    let long = VideoRequest {
        duration_seconds: Some(15),
        resolution: Some("1080p".into()),
        ..t2v("x")
    };
    assert_eq!(
        plugin.estimate_cost(&long, None).await??.total_micros,
        2_700_000
    );
    let card = [happyhorse_sandbox::api::ResolutionRate {
        resolution: "1080p".into(),
        micros_per_second: 200_000,
    }];
    assert_eq!(
        plugin
            .estimate_cost(&long, Some(&card))
            .await??
            .total_micros,
        3_000_000
    );
    assert!(emu.requests().is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_is_typed_and_a_missing_one_never_leaves() -> Test {
    let emu = emulator(fast()).await;
    let mut wrong = plugin_with_key(&emu, Some("not-the-key")).await;
    match wrong.submit(&config(&emu, 1_000), &t2v("x")).await? {
        Err(Error::PermanentUnauthorized(e)) => {
            assert_eq!(e.status, 401);
            assert_eq!(e.code.as_deref(), Some("invalid_api_key"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(emu.submits_received(), 1);

    let mut none = plugin_with_key(&emu, None).await;
    match none.submit(&config(&emu, 1_000), &t2v("x")).await? {
        Err(Error::PermanentUnauthorized(e)) => {
            assert_eq!(e.code.as_deref(), Some("missing_api_key"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        emu.submits_received(),
        1,
        "a missing key must not reach the network"
    );
    assert_eq!(emu.jobs_created(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_credits_is_typed() -> Test {
    let emu = emulator(EmulatorConfig {
        broke_keys: vec!["broke-key".into()],
        ..fast()
    })
    .await;
    let mut plugin = plugin_with_key(&emu, Some("broke-key")).await;
    match plugin.submit(&config(&emu, 1_000), &t2v("x")).await? {
        Err(Error::InsufficientCredits(e)) => assert_eq!(e.status, 402),
        other => panic!("{other:?}"),
    }
    assert_eq!((emu.submits_received(), emu.jobs_created()), (1, 0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_on_submit_is_retried_after_retry_after_and_bills_once() -> Test {
    let emu = emulator(fast()).await;
    emu.push_fault(
        Route::Submit,
        Fault::Status {
            status: 429,
            code: "rate_limit_exceeded".into(),
            message: "50 requests per minute".into(),
            retry_after: Some("1".into()),
        },
    );
    let mut plugin = plugin(&emu).await;
    let started = Instant::now();
    plugin.generate(&config(&emu, 10_000), &t2v("x")).await??;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert_eq!(emu.submits_received(), 2);
    assert_eq!(emu.jobs_created(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_on_poll_is_retried_then_succeeds() -> Test {
    let emu = emulator(fast()).await;
    for status in [503, 500] {
        emu.push_fault(
            Route::Poll,
            Fault::Status {
                status,
                code: "upstream_error".into(),
                message: "try again".into(),
                retry_after: None,
            },
        );
    }
    let mut plugin = plugin(&emu).await;
    let result = plugin.generate(&config(&emu, 10_000), &t2v("x")).await??;
    assert_eq!(result.outputs.len(), 1);
    assert_eq!(emu.jobs_created(), 1);
    assert_eq!(emu.submits_received(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_on_submit_is_never_resent() -> Test {
    let emu = emulator(fast()).await;
    emu.push_fault(
        Route::Submit,
        Fault::Status {
            status: 502,
            code: "upstream_error".into(),
            message: "bad gateway".into(),
            retry_after: None,
        },
    );
    let mut plugin = plugin(&emu).await;
    match plugin.submit(&config(&emu, 1_000), &t2v("x")).await? {
        Err(Error::PermanentSubmitOutcomeUnknown(u)) => {
            assert!(u.message.contains("502"), "{}", u.message)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(emu.submits_received(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_whose_answer_is_lost_is_not_resent() -> Test {
    let emu = emulator(fast()).await;
    emu.push_fault(
        Route::Submit,
        Fault::ProcessThenHang(Duration::from_secs(30)),
    );
    let mut plugin = runtime()
        .instantiate(happyhorse_sandbox::PluginOptions {
            limits: happyhorse_sandbox::PluginLimits {
                call_timeout: Duration::from_secs(2),
                ..Default::default()
            },
            ..options_allowing(&emu.base_url())
        })
        .await?;
    match plugin.submit(&config(&emu, 1_000), &t2v("x")).await {
        Err(PluginFailure::Deadline {
            function: "submit", ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // The job exists and is billed; the host learned nothing and sent nothing more.
    assert_eq!((emu.submits_received(), emu.jobs_created()), (1, 1));
    assert!(matches!(
        plugin.validate(&t2v("x")).await,
        Err(PluginFailure::Dead)
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_carries_the_providers_code_and_message() -> Test {
    let emu = emulator(fast()).await;
    emu.fail_next_job("content_policy_violation", "the prompt was refused");
    let mut plugin = plugin(&emu).await;
    match plugin.generate(&config(&emu, 10_000), &t2v("x")).await? {
        Err(Error::JobFailed(f)) => {
            assert!(f.job_id.starts_with("job_"));
            assert_eq!(f.failure.code, "content_policy_violation");
            assert_eq!(f.failure.message, "the prompt was refused");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(emu.submits_received(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_returns_the_job_id_and_wait_resumes_it() -> Test {
    let emu = emulator(EmulatorConfig {
        queued_ms: 100,
        running_ms: 1_500,
        ..fast()
    })
    .await;
    let mut plugin = plugin(&emu).await;
    let job_id = match plugin.generate(&config(&emu, 300), &t2v("x")).await? {
        Err(Error::Timeout(t)) => {
            assert!(t.last_status.is_some(), "the last reading comes back too");
            t.job_id
        }
        other => panic!("{other:?}"),
    };
    let result = plugin.wait(&config(&emu, 10_000), &job_id).await??;
    assert_eq!(result.job_id, job_id);
    assert_eq!(emu.submits_received(), 1, "resuming must not resubmit");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversize_bodies_are_typed_errors() -> Test {
    let emu = emulator(fast()).await;
    let mut plugin = plugin(&emu).await;
    let cfg = config(&emu, 10_000);
    let job = plugin.submit(&cfg, &t2v("x")).await??;

    // An unreadable poll answer is retried like a 5xx; only one that every attempt gets
    // (1 + max-retries) fails the poll.
    let attempts = cfg.poll.map_or(5, |p| p.max_retries + 1);
    let persistently = |fault: Fault| {
        for _ in 0..attempts {
            emu.push_fault(Route::Poll, fault.clone());
        }
    };
    emu.push_fault(Route::Poll, Fault::Malformed("<html>gateway</html>".into()));
    assert!(
        plugin.poll(&cfg, &job).await?.is_ok(),
        "one garbled answer is retried"
    );

    persistently(Fault::Malformed("<html>gateway</html>".into()));
    assert!(matches!(
        plugin.poll(&cfg, &job).await?,
        Err(Error::MalformedResponse(_))
    ));

    persistently(Fault::Malformed(
        r#"{"job_id":"other","status":"running"}"#.into(),
    ));
    assert!(matches!(
        plugin.poll(&cfg, &job).await?,
        Err(Error::MalformedResponse(_))
    ));

    persistently(Fault::Oversize(8 << 20));
    match plugin.poll(&cfg, &job).await? {
        Err(Error::MalformedResponse(e)) => {
            assert!(e.message.contains("max-response-bytes"), "{}", e.message)
        }
        other => panic!("{other:?}"),
    }

    emu.push_fault(
        Route::Submit,
        Fault::Malformed(r#"{"status":"queued"}"#.into()),
    );
    assert!(matches!(
        plugin.submit(&cfg, &t2v("x")).await?,
        Err(Error::PermanentSubmitOutcomeUnknown(_))
    ));
    // The instance survived all of it and still works.
    assert!(plugin.poll(&cfg, &job).await?.is_ok());
    assert_eq!(emu.submits_received(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_other_spellings_are_understood() -> Test {
    let emu = emulator(EmulatorConfig {
        status_style: StatusStyle::Variant,
        ..fast()
    })
    .await;
    let mut plugin = plugin(&emu).await;
    let cfg = config(&emu, 10_000);
    let job = plugin.submit(&cfg, &t2v("x")).await??;
    let mut seen_running = false;
    let outputs = loop {
        let status = plugin.poll(&cfg, &job).await??;
        match status.state {
            JobState::Completed(urls) => break urls,
            JobState::Running(Some(p)) => {
                assert!((0.0..=1.0).contains(&p));
                seen_running = true;
            }
            JobState::Queued | JobState::Running(None) => {}
            other => panic!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(seen_running);
    assert_eq!(outputs.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_job_is_not_found() -> Test {
    let emu = emulator(fast()).await;
    let mut plugin = plugin(&emu).await;
    match plugin
        .poll(&config(&emu, 1_000), "job_doesnotexist")
        .await?
    {
        Err(Error::NotFound(id)) => assert_eq!(id, "job_doesnotexist"),
        other => panic!("{other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_failures_are_typed() -> Test {
    let emu = emulator(fast()).await;
    let mut plugin = plugin(&emu).await;
    // An origin the host did not allow: refused before any connection.
    let mut elsewhere = config(&emu, 1_000);
    elsewhere.base_url = Some("http://127.0.0.1:9".into());
    match plugin.submit(&elsewhere, &t2v("x")).await? {
        Err(Error::TransportError(t)) => assert_eq!(t.kind, TransportKind::Denied),
        other => panic!("{other:?}"),
    }
    // An allowed origin with nothing listening: connection refused, retried, then typed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = closed.local_addr()?.port();
    drop(closed);
    let base = format!("http://127.0.0.1:{port}");
    let mut lonely = runtime().instantiate(options_allowing(&base)).await?;
    let mut cfg = config(&emu, 1_000);
    cfg.base_url = Some(base);
    match lonely.submit(&cfg, &t2v("x")).await? {
        Err(Error::TransportError(t)) => assert_eq!(t.kind, TransportKind::Connect),
        other => panic!("{other:?}"),
    }
    assert!(emu.requests().is_empty());
    Ok(())
}

#[test]
fn the_component_imports_only_standard_wasi() {
    let imports = runtime().imports();
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("wasi:http/outgoing-handler@0.2"))
    );
    for import in &imports {
        assert!(import.starts_with("wasi:"), "non-standard import {import}");
        assert!(import.contains("@0.2."), "not WASI 0.2: {import}");
    }
}
