//! The HappyHorse 1.1 `videogen:api/video-gen` component.
//!
//! This crate is only the WebAssembly edge: it converts between the WIT types and the pure
//! cores — the provider-neutral driver ([`video_gen_core`]) run with HappyHorse's rules
//! ([`happyhorse_core::HappyHorse`]) — and plugs the driver into WASI — HTTP through
//! `wasi:http/outgoing-handler` (via `waki`), the key from `wasi:cli/environment`, sleeps on
//! `wasi:clocks`, jitter from `wasi:random`. Every decision lives in the core, where it is
//! unit-tested natively.

mod convert;
mod wasi_env;
mod wasi_http;

wit_bindgen::generate!({
    path: "../wit",
    world: "empiriolabs:happyhorse/happyhorse",
});

use exports::videogen::api::video_gen::{
    ClientConfig, CostEstimate, Error, Guest, JobId, JobResult, JobStatus, ResolutionRate,
    ValidatedRequest, VideoRequest,
};
use happyhorse_core::HappyHorse;
use video_gen_core::Provider;
use video_gen_core::client::Client;

struct Component;

/// A driver for one call: the caller's configuration resolved against the environment.
// The error is the WIT `error` handed straight back to the caller; boxing it would only
// add an allocation on the way out.
#[allow(clippy::result_large_err)]
fn client(
    config: ClientConfig,
) -> Result<Client<HappyHorse, wasi_http::WasiHttp, wasi_env::WasiEnv>, Error> {
    let env_key = std::env::var(HappyHorse.api_key_env()).ok();
    let config = convert::config_input(config)
        .resolve(&HappyHorse, env_key)
        .map_err(convert::error)?;
    Ok(Client::new(
        HappyHorse,
        config,
        wasi_http::WasiHttp,
        wasi_env::WasiEnv::new(),
    ))
}

impl Guest for Component {
    fn validate(request: VideoRequest) -> Result<ValidatedRequest, Error> {
        HappyHorse
            .validate(&convert::request_in(request))
            .map(convert::validated_out)
            .map_err(convert::violations)
    }

    fn estimate_cost(
        request: VideoRequest,
        rates: Option<Vec<ResolutionRate>>,
    ) -> Result<CostEstimate, Error> {
        let rates = rates.map(convert::rates_in);
        happyhorse_core::cost::estimate_cost(&convert::request_in(request), rates.as_deref())
            .map(convert::cost_out)
            .map_err(convert::violations)
    }

    fn submit(config: ClientConfig, request: VideoRequest) -> Result<JobId, Error> {
        let request = convert::request_in(request);
        client(config)?.submit(&request).map_err(convert::error)
    }

    fn poll(config: ClientConfig, job: JobId) -> Result<JobStatus, Error> {
        client(config)?
            .poll(&job)
            .map(convert::status_out)
            .map_err(convert::error)
    }

    fn wait(config: ClientConfig, job: JobId) -> Result<JobResult, Error> {
        client(config)?
            .wait(&job)
            .map(convert::result_out)
            .map_err(convert::error)
    }

    fn generate(config: ClientConfig, request: VideoRequest) -> Result<JobResult, Error> {
        let request = convert::request_in(request);
        client(config)?
            .generate(&request)
            .map(convert::result_out)
            .map_err(convert::error)
    }
}

export!(Component);
