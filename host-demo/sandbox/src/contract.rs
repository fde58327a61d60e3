//! The contract's types, generated from `wit/`, and the defaults a caller builds its requests
//! from (a record generated from WIT has no `Default`; these leave every choice to the
//! component, which fills in the provider's defaults).

/// Host bindings for the component's world (the WIT's own doc comments come through; the
/// glue `bindgen!` adds has none).
#[allow(missing_docs)]
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "empiriolabs:happyhorse/happyhorse",
        exports: { default: async },
    });
}

pub use bindings::exports::videogen::api::video_gen as api;

/// Every setting left to the component: the real service, the key from the plugin's
/// environment, the component's timeouts and poll policy.
impl Default for api::ClientConfig {
    fn default() -> Self {
        api::ClientConfig {
            base_url: None,
            api_key: None,
            connect_timeout_ms: None,
            first_byte_timeout_ms: None,
            between_bytes_timeout_ms: None,
            max_response_bytes: None,
            poll: None,
        }
    }
}

/// An empty prompt and every option left to the provider: the base for struct-update syntax
/// (`VideoRequest { prompt, ..Default::default() }`). An empty prompt is refused by
/// `validate`, so this default alone is never sent.
impl Default for api::VideoRequest {
    fn default() -> Self {
        api::VideoRequest {
            model: None,
            prompt: String::new(),
            mode: None,
            images: Vec::new(),
            aspect_ratio: None,
            resolution: None,
            duration_seconds: None,
            seed: None,
            watermark: None,
        }
    }
}
