//! The emulator over real HTTP, as a client sees it.

use std::time::{Duration, Instant};

use happyhorse_emulator::{Emulator, EmulatorConfig, Fault, Route, StatusStyle};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "emulator-key";

fn config(queued_ms: u64, running_ms: u64) -> EmulatorConfig {
    EmulatorConfig {
        queued_ms,
        running_ms,
        // Tests poll far faster than a real client may; the limit has its own tests.
        rate_limit_per_minute: 0,
        ..EmulatorConfig::linear()
    }
}

/// A config whose jobs finish at once, for tests that are not about the lifecycle.
fn instant() -> EmulatorConfig {
    config(0, 0)
}

fn minimal() -> Value {
    json!({"model": "happyhorse-1-1", "prompt": "A horse gallops along a beach at sunset."})
}

async fn submit_with(emu: &Emulator, key: Option<&str>, body: &Value) -> Response {
    let mut request = Client::new()
        .post(format!("{}/v1/videos/generations", emu.base_url()))
        .json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("submit sent")
}

async fn submit(emu: &Emulator, body: &Value) -> Response {
    submit_with(emu, Some(KEY), body).await
}

async fn get(emu: &Emulator, path: &str) -> Response {
    Client::new()
        .get(format!("{}{path}", emu.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("get sent")
}

async fn json_of(response: Response) -> Value {
    let text = response.text().await.expect("body read");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts the documented error shape and returns the error object.
async fn expect_error(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body = json_of(response).await;
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    body["error"].clone()
}

async fn create_job(emu: &Emulator, body: &Value) -> String {
    let response = submit(emu, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    json_of(response).await["job_id"]
        .as_str()
        .expect("job_id")
        .to_owned()
}

/// Polls until the job is terminal (in the style's words), failing after a few seconds.
async fn poll_until_done(emu: &Emulator, job_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let job = json_of(get(emu, &format!("/v1/jobs/{job_id}")).await).await;
        let status = job["status"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if ["completed", "succeeded", "failed"].contains(&status.as_str()) {
            return job;
        }
        assert!(Instant::now() < deadline, "job never finished: {job}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn download(url: &str) -> Response {
    Client::new().get(url).send().await.expect("download sent")
}

#[tokio::test]
async fn auth_is_required_on_every_api_route() {
    let emu = Emulator::start(instant()).await.unwrap();
    let client = Client::new();
    let base = emu.base_url();
    for (method, path) in [
        ("POST", "/v1/videos/generations"),
        ("GET", "/v1/jobs/job_00"),
        ("GET", "/v1/account/usage"),
        ("GET", "/v1/nowhere"),
    ] {
        let request = |key: Option<&str>| {
            let r = client.request(method.parse().unwrap(), format!("{base}{path}"));
            match key {
                Some(key) => r.header("authorization", key),
                None => r,
            }
        };
        let missing = request(None).send().await.unwrap();
        expect_error(missing, StatusCode::UNAUTHORIZED, "missing_api_key").await;
        let empty = request(Some("Bearer ")).send().await.unwrap();
        expect_error(empty, StatusCode::UNAUTHORIZED, "missing_api_key").await;
        let wrong = request(Some("Bearer not-a-key")).send().await.unwrap();
        expect_error(wrong, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
        let basic = request(Some("Basic emulator-key")).send().await.unwrap();
        expect_error(basic, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
    }
    assert_eq!(emu.jobs_created(), 0);
    assert_eq!(emu.submits_received(), 4);
    let records = emu.requests();
    assert_eq!(records.len(), 16);
    assert!(records.iter().all(|r| !r.authorized && r.status == 401));

    // An accepted key, ordinary or broke, is marked authorized; no key value is ever kept.
    let emu = Emulator::start(EmulatorConfig {
        api_keys: vec!["key-one".into(), "key-two".into()],
        broke_keys: vec!["key-broke".into()],
        ..instant()
    })
    .await
    .unwrap();
    for key in ["key-one", "key-two"] {
        let response = submit_with(&emu, Some(key), &minimal()).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let broke = submit_with(&emu, Some("key-broke"), &minimal()).await;
    expect_error(broke, StatusCode::PAYMENT_REQUIRED, "insufficient_credits").await;
    assert!(emu.requests().iter().all(|r| r.authorized));
    let shown = format!("{:?} {:?}", emu.requests(), emu);
    assert!(
        !shown.contains("key-one") && !shown.contains("key-broke"),
        "{shown}"
    );
}

#[tokio::test]
async fn broke_account_is_refused_after_validation_and_creates_nothing() {
    let emu = Emulator::start(EmulatorConfig {
        broke_keys: vec!["broke".into()],
        ..instant()
    })
    .await
    .unwrap();
    let invalid = submit_with(&emu, Some("broke"), &json!({"model": "happyhorse-1-1"})).await;
    expect_error(invalid, StatusCode::BAD_REQUEST, "invalid_request").await;
    let valid = submit_with(&emu, Some("broke"), &minimal()).await;
    expect_error(valid, StatusCode::PAYMENT_REQUIRED, "insufficient_credits").await;
    // A broke account can still poll and read usage.
    let usage = Client::new()
        .get(format!("{}/v1/account/usage", emu.base_url()))
        .bearer_auth("broke")
        .send()
        .await
        .unwrap();
    assert_eq!(usage.status(), StatusCode::OK);
    assert_eq!(emu.submits_received(), 2);
    assert_eq!(emu.jobs_created(), 0);
}

#[tokio::test]
async fn every_validation_rule_is_enforced() {
    let emu = Emulator::start(instant()).await.unwrap();
    let url = "https://example.com/horse.png";
    let data = "data:image/jpeg;base64,/9j/4AAQSkZJRg==";
    let with = |pairs: &[(&str, Value)]| {
        let mut body = minimal();
        for (k, v) in pairs {
            body[*k] = v.clone();
        }
        body
    };
    let rejected: Vec<(Value, &str)> = vec![
        (json!({"prompt": "p"}), "model"),
        (with(&[("model", json!(11))]), "model"),
        (json!({"model": "happyhorse-1-1"}), "prompt"),
        (with(&[("prompt", json!(""))]), "prompt"),
        (with(&[("prompt", json!(5))]), "prompt"),
        (with(&[("prompt", json!("x".repeat(2501)))]), "prompt"),
        (with(&[("mode", json!("v2v"))]), "mode"),
        (
            with(&[("mode", json!("t2v")), ("image", json!(url))]),
            "image",
        ),
        (with(&[("mode", json!("i2v"))]), "image"),
        (
            with(&[("mode", json!("i2v")), ("image", json!([url, url]))]),
            "image",
        ),
        (
            with(&[("mode", json!("r2v")), ("image", json!([]))]),
            "image",
        ),
        (
            with(&[("mode", json!("r2v")), ("image", json!(vec![url; 10]))]),
            "image",
        ),
        (with(&[("image", json!(vec![url; 10]))]), "image"),
        (with(&[("image", json!("file:///etc/passwd"))]), "image"),
        (with(&[("image", json!("data:image/png;base64,"))]), "image"),
        (with(&[("image", json!([url, 7]))]), "image"),
        (with(&[("image", json!(true))]), "image"),
        (with(&[("aspect_ratio", json!("2:1"))]), "aspect_ratio"),
        (with(&[("resolution", json!("480p"))]), "resolution"),
        (with(&[("resolution", json!(720))]), "resolution"),
        (with(&[("duration", json!(2))]), "duration"),
        (with(&[("duration", json!(16))]), "duration"),
        (with(&[("duration", json!("5"))]), "duration"),
        (with(&[("seed", json!(-1))]), "seed"),
        (with(&[("seed", json!(2_147_483_648u64))]), "seed"),
        (with(&[("seed", json!(4.5))]), "seed"),
        (with(&[("watermark", json!("yes"))]), "watermark"),
    ];
    for (body, param) in &rejected {
        let error = expect_error(
            submit(&emu, body).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        assert_eq!(error["param"], *param, "{body}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(param), "message {message:?} names {param}");
    }

    let wrong_model = submit(&emu, &with(&[("model", json!("happyhorse-1-0"))])).await;
    expect_error(wrong_model, StatusCode::NOT_FOUND, "model_not_found").await;

    for raw in ["{not json", "[1,2]", "\"text\"", ""] {
        let response = Client::new()
            .post(format!("{}/v1/videos/generations", emu.base_url()))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    assert_eq!(emu.jobs_created(), 0);
    assert_eq!(emu.submits_received(), rejected.len() + 5);

    let accepted = [
        with(&[("prompt", json!("é".repeat(2500)))]),
        with(&[("mode", json!("i2v")), ("image", json!(url))]),
        with(&[("mode", json!("i2v")), ("image", json!([data]))]),
        with(&[("mode", json!("r2v")), ("image", json!(vec![url; 9]))]),
        with(&[("mode", json!("t2v")), ("image", json!([]))]),
        with(&[("image", json!([url, data]))]),
        with(&[
            ("aspect_ratio", json!("9:16")),
            ("resolution", json!("1080p")),
            ("duration", json!(15)),
            ("seed", json!(2_147_483_647)),
            ("watermark", json!(true)),
            ("unknown_field", json!({"ignored": true})),
        ]),
        with(&[
            ("duration", json!(3.5)),
            ("seed", json!(0)),
            ("seed", Value::Null),
        ]),
    ];
    for body in &accepted {
        let response = submit(&emu, body).await;
        assert_eq!(response.status(), StatusCode::OK, "{body}");
    }
    assert_eq!(emu.jobs_created(), accepted.len());
}

#[tokio::test]
async fn a_job_goes_queued_running_completed_and_its_clip_downloads() {
    let emu = Emulator::start(config(200, 600)).await.unwrap();
    let response = submit(&emu, &minimal()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer = json_of(response).await;
    let job_id = answer["job_id"].as_str().unwrap().to_owned();
    assert!(job_id.starts_with("job_") && job_id[4..].chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(answer["status"], "queued");
    let created_at = answer["created_at"].as_str().unwrap();
    assert!(created_at.len() >= 20 && created_at.ends_with('Z') && created_at.contains('T'));
    assert_eq!(emu.submits_received(), 1);
    assert_eq!(emu.jobs_created(), 1);
    assert_eq!(emu.requests()[0].body.as_ref(), Some(&minimal()));

    let mut seen = Vec::new();
    let mut last_progress = 0.0;
    let finished = loop {
        let job = json_of(get(&emu, &format!("/v1/jobs/{job_id}")).await).await;
        let status = job["status"].as_str().unwrap().to_owned();
        let progress = job["progress"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&progress), "{job}");
        assert!(progress >= last_progress, "progress went back: {job}");
        last_progress = progress;
        assert_eq!(job["job_id"], job_id.as_str());
        assert_eq!(job["created_at"], created_at);
        match status.as_str() {
            "queued" | "running" => {
                assert!(
                    job["completed_at"].is_null() && job["result"].is_null(),
                    "{job}"
                );
                assert!(job["error"].is_null(), "{job}");
                if status == "running" {
                    assert!(progress < 1.0, "{job}");
                }
            }
            "completed" => break job,
            other => panic!("unexpected status {other}: {job}"),
        }
        if seen.last() != Some(&status) {
            seen.push(status);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(seen, ["queued", "running"]);
    assert_eq!(finished["progress"], 1.0);
    assert!(finished["completed_at"].is_string());
    assert!(finished["error"].is_null());
    let urls = finished["result"]["output_urls"].as_array().unwrap();
    assert_eq!(urls.len(), 1);
    let url = urls[0].as_str().unwrap();
    let prefix = format!("{}/files/{job_id}/output.mp4?expires=", emu.base_url());
    assert!(url.starts_with(&prefix) && url.contains("&sig="), "{url}");

    // No key is needed for a signed URL, and it is not rate-limited.
    let clip = download(url).await;
    assert_eq!(clip.status(), StatusCode::OK);
    assert_eq!(clip.headers()["content-type"], "video/mp4");
    let length: usize = clip.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = clip.bytes().await.unwrap();
    assert_eq!(bytes.len(), length);
    assert_eq!(&bytes[4..8], b"ftyp");
}

#[tokio::test]
async fn variant_style_uses_other_names_and_shapes() {
    let emu = Emulator::start(EmulatorConfig {
        status_style: StatusStyle::Variant,
        ..config(200, 600)
    })
    .await
    .unwrap();
    // The failing job runs alongside the main one to keep the test short.
    emu.fail_next_job("upstream_error", "the renderer fell over");
    let failed_id = create_job(&emu, &minimal()).await;
    let answer = json_of(submit(&emu, &minimal()).await).await;
    assert_eq!(answer["status"], "IN_QUEUE");
    let job_id = answer["job_id"].as_str().unwrap().to_owned();

    let queued = json_of(get(&emu, &format!("/v1/jobs/{job_id}")).await).await;
    assert_eq!(queued["status"], "IN_QUEUE");
    assert_eq!(queued["progress"], "0%");
    assert!(queued["eta_seconds"].is_u64(), "an extra field: {queued}");

    tokio::time::sleep(Duration::from_millis(400)).await;
    let running = json_of(get(&emu, &format!("/v1/jobs/{job_id}")).await).await;
    assert_eq!(running["status"], "Processing");
    let percent = running["progress"].as_str().unwrap();
    let number: u32 = percent.strip_suffix('%').unwrap().parse().unwrap();
    assert!(number < 100, "{percent}");

    let done = poll_until_done(&emu, &job_id).await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["progress"], "100%");
    let url = done["result"]["video_url"].as_str().unwrap();
    assert!(done["result"].get("output_urls").is_none());
    assert_eq!(download(url).await.status(), StatusCode::OK);

    let failed = poll_until_done(&emu, &failed_id).await;
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(failed["error"]["code"], "upstream_error");
}

#[tokio::test]
async fn fail_next_job_and_the_prompt_marker_fail_jobs() {
    let emu = Emulator::start(config(10, 20)).await.unwrap();
    emu.fail_next_job("model_unavailable", "try again shortly");
    let first = create_job(&emu, &minimal()).await;
    let second = create_job(&emu, &minimal()).await;
    let mut marked = minimal();
    marked["prompt"] = json!("A horse [emulator:fail] at dusk");
    let third = create_job(&emu, &marked).await;

    let failed = poll_until_done(&emu, &first).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        failed["error"],
        json!({"code": "model_unavailable", "message": "try again shortly"})
    );
    assert!(failed["result"].is_null());
    assert!(failed["completed_at"].is_string());

    assert_eq!(poll_until_done(&emu, &second).await["status"], "completed");

    let flagged = poll_until_done(&emu, &third).await;
    assert_eq!(flagged["status"], "failed");
    assert_eq!(flagged["error"]["code"], "content_policy_violation");
    assert_eq!(emu.jobs_created(), 3, "failed jobs were still created");
}

#[tokio::test]
async fn unknown_jobs_routes_and_methods_answer_json_errors() {
    let emu = Emulator::start(instant()).await.unwrap();
    expect_error(
        get(&emu, "/v1/jobs/job_ffff").await,
        StatusCode::NOT_FOUND,
        "job_not_found",
    )
    .await;
    expect_error(
        get(&emu, "/v1/nowhere").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        get(&emu, "/elsewhere").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let wrong_method = get(&emu, "/v1/videos/generations").await;
    expect_error(
        wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    let paths: Vec<_> = emu
        .requests()
        .into_iter()
        .map(|r| (r.path, r.status))
        .collect();
    assert_eq!(
        paths,
        [
            ("/v1/jobs/job_ffff".to_owned(), 404),
            ("/v1/nowhere".to_owned(), 404),
            ("/elsewhere".to_owned(), 404),
            ("/v1/videos/generations".to_owned(), 405),
        ]
    );
    // A GET on the submit path is not a submit.
    assert_eq!(emu.submits_received(), 0);
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let emu = Emulator::start(instant()).await.unwrap();
    let response = Client::new()
        .post(format!("{}/v1/videos/generations", emu.base_url()))
        .bearer_auth(KEY)
        .body(vec![b' '; 33 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "request_too_large").await;
    assert_eq!(emu.jobs_created(), 0);
}

#[tokio::test]
async fn status_fault_replaces_the_answer_and_creates_no_job() {
    let emu = Emulator::start(instant()).await.unwrap();
    emu.push_fault(
        Route::Submit,
        Fault::Status {
            status: 503,
            code: "model_unavailable".into(),
            message: "busy".into(),
            retry_after: Some("2".into()),
        },
    );
    let response = submit(&emu, &minimal()).await;
    assert_eq!(response.headers()["retry-after"], "2");
    let error = expect_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "model_unavailable",
    )
    .await;
    assert_eq!(error["message"], "busy");
    assert_eq!((emu.submits_received(), emu.jobs_created()), (1, 0));
    assert_eq!(
        emu.requests()[0].fault.as_deref(),
        Some("status 503 model_unavailable")
    );

    // Consumed: the next submit goes through. Faults also win over a missing key.
    assert_eq!(submit(&emu, &minimal()).await.status(), StatusCode::OK);
    emu.push_fault(
        Route::Usage,
        Fault::Status {
            status: 429,
            code: "rate_limit_exceeded".into(),
            message: "slow down".into(),
            retry_after: None,
        },
    );
    let response = Client::new()
        .get(format!("{}/v1/account/usage", emu.base_url()))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("retry-after").is_none());
    expect_error(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
    )
    .await;
    assert_eq!(emu.count_429(), 1);
    assert_eq!((emu.submits_received(), emu.jobs_created()), (2, 1));
}

#[tokio::test]
async fn delay_fault_waits_then_answers_normally() {
    let emu = Emulator::start(instant()).await.unwrap();
    let job_id = create_job(&emu, &minimal()).await;
    emu.push_fault(Route::Poll, Fault::Delay(Duration::from_millis(300)));
    let started = Instant::now();
    let response = get(&emu, &format!("/v1/jobs/{job_id}")).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_of(response).await["status"], "completed");
    let started = Instant::now();
    assert_eq!(
        get(&emu, &format!("/v1/jobs/{job_id}")).await.status(),
        StatusCode::OK
    );
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "the delay was used once"
    );
}

#[tokio::test]
async fn malformed_fault_sends_the_raw_body() {
    let emu = Emulator::start(instant()).await.unwrap();
    let job_id = create_job(&emu, &minimal()).await;
    emu.push_fault(Route::Poll, Fault::Malformed("{\"job_id\": tru".into()));
    let response = get(&emu, &format!("/v1/jobs/{job_id}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.text().await.unwrap(), "{\"job_id\": tru");
}

#[tokio::test]
async fn oversize_fault_streams_chunked_padding() {
    let emu = Emulator::start(instant()).await.unwrap();
    let size = 300_000;
    emu.push_fault(Route::Usage, Fault::Oversize(size));
    let response = get(&emu, "/v1/account/usage").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("content-length").is_none());
    assert_eq!(response.headers()["transfer-encoding"], "chunked");
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), size);
    let value: Value = serde_json::from_slice(&body).expect("valid-looking JSON");
    assert!(value["padding"].is_string());
}

#[tokio::test]
async fn process_then_hang_creates_the_job_but_loses_the_answer() {
    let emu = Emulator::start(instant()).await.unwrap();
    emu.push_fault(
        Route::Submit,
        Fault::ProcessThenHang(Duration::from_secs(30)),
    );
    let client = Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = client
        .post(format!("{}/v1/videos/generations", emu.base_url()))
        .bearer_auth(KEY)
        .json(&minimal())
        .send()
        .await
        .expect_err("the answer never comes in time");
    assert!(error.is_timeout(), "{error}");
    assert_eq!((emu.submits_received(), emu.jobs_created()), (1, 1));
    let record = &emu.requests()[0];
    assert_eq!(record.status, 200);
    assert!(
        record
            .fault
            .as_deref()
            .unwrap()
            .starts_with("process then hang")
    );

    // The job exists and usage shows it billed.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let usage = json_of(get(&emu, "/v1/account/usage").await).await;
    assert_eq!(usage["data"].as_array().unwrap().len(), 1);

    // A pending hang does not hold up shutdown.
    let started = Instant::now();
    emu.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn faults_are_fifo_per_route_with_any_as_fallback() {
    let emu = Emulator::start(instant()).await.unwrap();
    let job_id = create_job(&emu, &minimal()).await;
    let poll = format!("/v1/jobs/{job_id}");
    emu.push_fault(Route::Any, Fault::Malformed("any".into()));
    emu.push_fault(Route::Poll, Fault::Malformed("poll-1".into()));
    emu.push_fault(Route::Poll, Fault::Malformed("poll-2".into()));
    assert_eq!(get(&emu, &poll).await.text().await.unwrap(), "poll-1");
    assert_eq!(get(&emu, &poll).await.text().await.unwrap(), "poll-2");
    assert_eq!(
        get(&emu, "/v1/account/usage").await.text().await.unwrap(),
        "any"
    );
    assert_eq!(get(&emu, &poll).await.status(), StatusCode::OK);
    let job = json_of(get(&emu, &poll).await).await;
    assert_eq!(job["status"], "completed");

    // Downloads can be faulted too.
    let url = job["result"]["output_urls"][0].as_str().unwrap();
    emu.push_fault(
        Route::Download,
        Fault::Status {
            status: 500,
            code: "upstream_error".into(),
            message: "cdn down".into(),
            retry_after: None,
        },
    );
    expect_error(
        download(url).await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "upstream_error",
    )
    .await;
    assert_eq!(download(url).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let emu = Emulator::start(EmulatorConfig {
        rate_limit_per_minute: 3,
        ..instant()
    })
    .await
    .unwrap();
    let job_id = create_job(&emu, &minimal()).await;
    // Unauthorized requests spend the budget too.
    let anonymous = Client::new()
        .get(format!("{}/v1/account/usage", emu.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let job = json_of(get(&emu, &format!("/v1/jobs/{job_id}")).await).await;

    let limited = get(&emu, "/v1/account/usage").await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    expect_error(
        limited,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
    )
    .await;
    let limited_submit = submit(&emu, &minimal()).await;
    assert_eq!(limited_submit.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(emu.count_429(), 2);
    assert_eq!((emu.submits_received(), emu.jobs_created()), (2, 1));

    // Signed downloads are outside the API budget.
    let url = job["result"]["output_urls"][0].as_str().unwrap();
    assert_eq!(download(url).await.status(), StatusCode::OK);

    // A faulted request is answered by its fault even when over the limit.
    emu.push_fault(Route::Usage, Fault::Malformed("{}".into()));
    assert_eq!(
        get(&emu, "/v1/account/usage").await.status(),
        StatusCode::OK
    );
    assert_eq!(emu.count_429(), 2);
    assert_eq!(emu.requests().len(), 7);
}

#[tokio::test]
async fn zero_rate_limit_means_unlimited() {
    let emu = Emulator::start(EmulatorConfig {
        rate_limit_per_minute: 0,
        ..instant()
    })
    .await
    .unwrap();
    for _ in 0..60 {
        assert_eq!(
            get(&emu, "/v1/account/usage").await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(emu.count_429(), 0);
}

#[tokio::test]
async fn expired_tampered_and_unknown_urls_are_refused() {
    let emu = Emulator::start(instant()).await.unwrap();
    let job_id = create_job(&emu, &minimal()).await;
    let job = poll_until_done(&emu, &job_id).await;
    let url = job["result"]["output_urls"][0].as_str().unwrap().to_owned();
    assert_eq!(download(&url).await.status(), StatusCode::OK);

    let (head, sig) = url.rsplit_once("&sig=").unwrap();
    let first = if sig.starts_with('0') { '1' } else { '0' };
    let flipped = format!("{head}&sig={first}{}", &sig[1..]);
    expect_error(
        download(&flipped).await,
        StatusCode::FORBIDDEN,
        "invalid_signature",
    )
    .await;
    let unsigned = head.to_owned();
    expect_error(
        download(&unsigned).await,
        StatusCode::FORBIDDEN,
        "invalid_signature",
    )
    .await;
    let later = head
        .rsplit_once("expires=")
        .map(|(front, e)| format!("{front}expires={}", e.parse::<u64>().unwrap() + 3600))
        .unwrap();
    let extended = format!("{later}&sig={sig}");
    expect_error(
        download(&extended).await,
        StatusCode::FORBIDDEN,
        "invalid_signature",
    )
    .await;

    let other_job = url.replace(&job_id, "job_0000");
    expect_error(
        download(&other_job).await,
        StatusCode::NOT_FOUND,
        "job_not_found",
    )
    .await;
    let other_file = url.replace("output.mp4", "other.mp4");
    assert_eq!(download(&other_file).await.status(), StatusCode::NOT_FOUND);

    // A zero TTL hands out URLs that are already expired.
    let short = Emulator::start(EmulatorConfig {
        url_ttl: Duration::ZERO,
        ..instant()
    })
    .await
    .unwrap();
    let job_id = create_job(&short, &minimal()).await;
    let job = poll_until_done(&short, &job_id).await;
    let url = job["result"]["output_urls"][0].as_str().unwrap();
    expect_error(download(url).await, StatusCode::FORBIDDEN, "url_expired").await;
}

#[tokio::test]
async fn usage_lists_finished_jobs_with_their_cost() {
    // Jobs run long enough (1.5 s) that the three submits and the first usage read land before
    // any ends, even on a loaded machine (100 ms was seen to lose that race under a parallel
    // build).
    let emu = Emulator::start(config(0, 1_500)).await.unwrap();
    let short = create_job(&emu, &minimal()).await;
    let mut long = minimal();
    long["resolution"] = json!("1080p");
    long["duration"] = json!(15);
    let long = create_job(&emu, &long).await;
    emu.fail_next_job("upstream_error", "boom");
    let failed = create_job(&emu, &minimal()).await;

    let early = json_of(get(&emu, "/v1/account/usage").await).await;
    assert_eq!(
        early,
        json!({"data": []}),
        "in-flight jobs are not billed yet"
    );

    for id in [&short, &long, &failed] {
        poll_until_done(&emu, id).await;
    }
    let usage = json_of(get(&emu, "/v1/account/usage").await).await;
    let data = usage["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    let ids: Vec<_> = data.iter().map(|e| e["job_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [short.as_str(), long.as_str(), failed.as_str()]);

    assert_eq!(data[0]["model"], "happyhorse-1-1");
    assert_eq!(data[0]["cost"], json!({"amount": 0.7, "currency": "USD"}));
    assert_eq!(data[0]["status"], "completed");
    assert_eq!(data[0]["status_code"], 200);
    assert!(data[0]["error"].is_null());
    let url = data[0]["output_urls"][0].as_str().unwrap();
    assert_eq!(download(url).await.status(), StatusCode::OK);

    assert_eq!(data[1]["cost"]["amount"], 2.7);

    assert_eq!(data[2]["status"], "failed");
    assert_eq!(data[2]["cost"]["amount"], 0.0);
    assert_eq!(data[2]["error"]["code"], "upstream_error");
    assert_eq!(data[2]["output_urls"], json!([]));
}

#[tokio::test]
async fn request_log_keeps_order_queries_and_times() {
    let emu = Emulator::start(instant()).await.unwrap();
    get(&emu, "/v1/account/usage?limit=5").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    submit(&emu, &minimal()).await;
    let records = emu.requests();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].method, "GET");
    assert_eq!(records[0].query.as_deref(), Some("limit=5"));
    assert!(records[0].body.is_none());
    assert_eq!(records[1].method, "POST");
    assert_eq!(records[1].status, 200);
    assert!(records[1].at > records[0].at);
    assert!(records[1].fault.is_none());
}

#[tokio::test]
async fn shutdown_stops_serving_and_drop_does_not_hang() {
    let emu = Emulator::start(instant()).await.unwrap();
    let base = emu.base_url();
    assert!(base.starts_with("http://127.0.0.1:") && !base.ends_with('/'));
    assert_eq!(
        emu.addr().port(),
        base.rsplit(':').next().unwrap().parse::<u16>().unwrap()
    );
    assert_eq!(
        get(&emu, "/v1/account/usage").await.status(),
        StatusCode::OK
    );
    emu.shutdown().await;
    let after = Client::new()
        .get(format!("{base}/v1/account/usage"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(after.is_err(), "still serving after shutdown");

    let dropped = Emulator::start(instant()).await.unwrap();
    let base = dropped.base_url();
    drop(dropped);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = Client::new()
        .get(format!("{base}/v1/account/usage"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(after.is_err(), "still serving after drop");
}

#[tokio::test]
async fn start_on_a_fixed_address() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let emu = Emulator::start_on(addr, instant()).await.unwrap();
    assert_eq!(emu.addr(), addr);
    assert_eq!(emu.base_url(), format!("http://{addr}"));
    assert!(
        Emulator::start_on(addr, instant()).await.is_err(),
        "the port is taken"
    );
}

#[tokio::test]
async fn configured_latency_delays_api_answers_only() {
    let emu = Emulator::start(EmulatorConfig {
        latency: Duration::from_millis(150),
        ..instant()
    })
    .await
    .unwrap();
    let started = Instant::now();
    let created = json_of(submit(&emu, &minimal()).await).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    let id = created["job_id"].as_str().unwrap();
    let started = Instant::now();
    let job = json_of(get(&emu, &format!("/v1/jobs/{id}")).await).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    // Downloads are not the API: no added latency.
    let url = job["result"]["output_urls"][0].as_str().unwrap();
    let started = Instant::now();
    let clip = Client::new().get(url).send().await.unwrap();
    assert_eq!(clip.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(150));
    emu.shutdown().await;
}

#[tokio::test]
async fn jobs_take_their_own_time_from_the_configured_ranges() {
    let emu = Emulator::start(EmulatorConfig {
        queued_ms_range: Some((0, 0)),
        running_ms_range: Some((100, 400)),
        rate_limit_per_minute: 0,
        ..EmulatorConfig::linear()
    })
    .await
    .unwrap();
    let mut ids = Vec::new();
    for _ in 0..8 {
        let created = json_of(submit(&emu, &minimal()).await).await;
        ids.push(created["job_id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(450)).await;
    let mut lengths = std::collections::BTreeSet::new();
    for id in ids {
        let job = json_of(get(&emu, &format!("/v1/jobs/{id}")).await).await;
        assert_eq!(job["status"], "completed", "{job}");
        let ms = |k: &str| {
            let t = job[k].as_str().unwrap();
            // "…T08:05:09.042Z": the seconds and milliseconds are enough within one test.
            let (s, ms) = t[17..23].split_once('.').unwrap();
            s.parse::<u64>().unwrap() * 1_000 + ms.parse::<u64>().unwrap()
        };
        let took = (ms("completed_at") + 60_000 - ms("created_at")) % 60_000;
        assert!((100..=400).contains(&took), "{took} ms: {job}");
        lengths.insert(took);
    }
    assert!(lengths.len() > 1, "the running times vary: {lengths:?}");
    emu.shutdown().await;
}

#[tokio::test]
async fn job_timings_tell_when_a_poll_first_saw_each_job_end() {
    let emu = Emulator::start(config(50, 100)).await.unwrap();
    let job_id = create_job(&emu, &minimal()).await;
    // Seen running: not yet detected.
    get(&emu, &format!("/v1/jobs/{job_id}")).await;
    let timings = emu.job_timings();
    assert_eq!(timings.len(), 1);
    assert_eq!(timings[0].id, job_id);
    assert_eq!(timings[0].first_seen_ended_at, None);
    assert_eq!(
        timings[0].ended_at - timings[0].created_at,
        Duration::from_millis(150)
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    poll_until_done(&emu, &job_id).await;
    let seen = emu.job_timings()[0]
        .first_seen_ended_at
        .expect("seen ended");
    assert!(seen >= timings[0].ended_at + Duration::from_millis(100));
    // Later polls do not move it.
    tokio::time::sleep(Duration::from_millis(20)).await;
    get(&emu, &format!("/v1/jobs/{job_id}")).await;
    assert_eq!(emu.job_timings()[0].first_seen_ended_at, Some(seen));
}

/// Sends `request` as raw bytes on a new connection and reads until the server closes it,
/// fails, or `patience` passes: what a client really gets, byte for byte.
async fn raw_exchange(emu: &Emulator, request: &[u8], patience: Duration) -> RawOutcome {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(emu.addr()).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => {
                return RawOutcome {
                    received,
                    end: RawEnd::StillOpen,
                };
            }
            Ok(Ok(0)) => {
                return RawOutcome {
                    received,
                    end: RawEnd::Closed,
                };
            }
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return RawOutcome {
                    received,
                    end: RawEnd::Reset,
                };
            }
            Ok(Err(e)) => panic!("unexpected read error: {e}"),
        }
    }
}

#[derive(Debug, PartialEq)]
enum RawEnd {
    Closed,
    Reset,
    StillOpen,
}

struct RawOutcome {
    received: Vec<u8>,
    end: RawEnd,
}

fn raw_submit(body: &str, chunked: bool) -> Vec<u8> {
    let framing = if chunked {
        format!(
            "Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        )
    } else {
        format!("Content-Length: {}\r\n\r\n{body}", body.len())
    };
    format!(
        "POST /v1/videos/generations HTTP/1.1\r\nHost: emulator\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nConnection: close\r\n{framing}"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_chunked_body_is_refused_with_411_unless_allowed() {
    let body = minimal().to_string();
    let emu = Emulator::start(instant()).await.unwrap();
    let chunked = raw_exchange(&emu, &raw_submit(&body, true), Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&chunked.received);
    assert!(text.starts_with("HTTP/1.1 411"), "{text}");
    assert!(text.contains("length_required"), "{text}");
    let sized = raw_exchange(&emu, &raw_submit(&body, false), Duration::from_secs(5)).await;
    assert!(String::from_utf8_lossy(&sized.received).starts_with("HTTP/1.1 200"));
    assert_eq!(emu.jobs_created(), 1, "only the sized submit made a job");
    let log = emu.requests();
    assert!(log[0].chunked && log[0].content_length.is_none());
    assert_eq!(log[1].content_length, Some(body.len() as u64));
    emu.shutdown().await;

    let lenient = Emulator::start(EmulatorConfig {
        require_content_length: false,
        ..instant()
    })
    .await
    .unwrap();
    let chunked = raw_exchange(&lenient, &raw_submit(&body, true), Duration::from_secs(5)).await;
    assert!(String::from_utf8_lossy(&chunked.received).starts_with("HTTP/1.1 200"));
    lenient.shutdown().await;
}

#[tokio::test]
async fn a_reset_after_processing_creates_the_job_and_answers_nothing() {
    let emu = Emulator::start(instant()).await.unwrap();
    emu.push_fault(Route::Submit, Fault::ResetAfterProcessing);
    let out = raw_exchange(
        &emu,
        &raw_submit(&minimal().to_string(), false),
        Duration::from_secs(5),
    )
    .await;
    assert!(
        out.received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.received)
    );
    assert_eq!(out.end, RawEnd::Reset);
    assert_eq!(
        emu.jobs_created(),
        1,
        "the job exists: the submit's fate is unknown to the client"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn silence_stall_trickle_truncate_and_gateway_pages() {
    let emu = Emulator::start(instant()).await.unwrap();
    let submit = raw_submit(&minimal().to_string(), false);

    emu.push_fault(Route::Submit, Fault::Silence);
    let out = raw_exchange(&emu, &submit, Duration::from_millis(700)).await;
    assert_eq!((out.received.len(), out.end), (0, RawEnd::StillOpen));
    assert_eq!(emu.jobs_created(), 0, "silence processes nothing");

    emu.push_fault(Route::Submit, Fault::StallMidBody);
    let out = raw_exchange(&emu, &submit, Duration::from_millis(700)).await;
    let text = String::from_utf8_lossy(&out.received).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let declared: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.parse().unwrap())
        })
        .unwrap();
    assert_eq!(out.end, RawEnd::StillOpen);
    assert!(!body.is_empty() && body.len() < declared, "{text}");
    assert_eq!(emu.jobs_created(), 1, "a stalled answer's job exists");

    emu.push_fault(Route::Submit, Fault::Trickle(Duration::from_millis(20)));
    let started = Instant::now();
    let out = raw_exchange(&emu, &submit, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&out.received).to_string();
    let body: Value = serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert!(body["job_id"].is_string());
    assert!(
        started.elapsed() >= Duration::from_millis(20 * 30),
        "trickled"
    );

    emu.push_fault(Route::Submit, Fault::TruncatedBody);
    let response = submit_with(&emu, Some(KEY), &minimal()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    assert!(text.starts_with('{') && !text.ends_with('}'), "{text}");

    for status in [200u16, 502, 504] {
        emu.push_fault(Route::Poll, Fault::HtmlPage(status));
        let response = get(&emu, "/v1/jobs/job_x").await;
        assert_eq!(response.status().as_u16(), status);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(response.text().await.unwrap().contains("<html>"));
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn a_job_fault_hits_only_that_jobs_polls() {
    let emu = Emulator::start(instant()).await.unwrap();
    let a = create_job(&emu, &minimal()).await;
    let b = create_job(&emu, &minimal()).await;
    emu.push_job_fault(&a, Fault::HtmlPage(200));
    assert_eq!(
        get(&emu, &format!("/v1/jobs/{b}")).await.headers()["content-type"],
        "application/json"
    );
    let garbled = get(&emu, &format!("/v1/jobs/{a}")).await;
    assert!(garbled.text().await.unwrap().contains("<html>"));
    let fine = get(&emu, &format!("/v1/jobs/{a}")).await;
    assert_eq!(json_of(fine).await["job_id"], a.as_str());
    emu.shutdown().await;
}

#[tokio::test]
async fn a_render_farm_reports_like_one() {
    use happyhorse_emulator::{JobModel, RenderFarm};
    // A hundred times faster than real time: a 5 s clip renders in about 0.6 s.
    let emu = Emulator::start(EmulatorConfig {
        job_model: JobModel::RenderFarm(RenderFarm {
            time_scale: 0.01,
            seed: 7,
            ..RenderFarm::default()
        }),
        rate_limit_per_minute: 0,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let mut jobs = Vec::new();
    for _ in 0..24 {
        jobs.push(create_job(&emu, &minimal()).await);
    }
    let (mut percent, mut missing, mut fraction) = (0, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut done = std::collections::HashSet::new();
    while done.len() < jobs.len() && Instant::now() < deadline {
        for job in &jobs {
            let object = json_of(get(&emu, &format!("/v1/jobs/{job}")).await).await;
            match (object["status"].as_str().unwrap(), &object["progress"]) {
                ("completed", p) => {
                    // Done is 1, or 100 from a job that reports in percent.
                    assert!(p == 1.0 || p == 100.0, "{object}");
                    done.insert(job.clone());
                }
                ("queued" | "running", Value::Null) => missing += 1,
                ("queued" | "running", p) => {
                    let p = p.as_f64().unwrap();
                    assert!((0.0..=99.0).contains(&p), "{object}");
                    if p > 1.0 { percent += 1 } else { fraction += 1 }
                }
                (other, _) => panic!("{other}: {object}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(done.len(), jobs.len(), "every job ends");
    assert!(
        percent > 0 && missing > 0 && fraction > 0,
        "{percent} {missing} {fraction}"
    );
    emu.shutdown().await;
}
