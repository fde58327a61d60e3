//! Builds the test-only components for wasm32-wasip2, with the product's build helper.

#[path = "../../artifacts/components.rs"]
mod components;

fn main() {
    components::build_and_expose(
        &[
            // Misbehaves on purpose; the sandbox tests run it in the real host.
            ("hostile-guest", "HOSTILE"),
            // examples/serverless, composed with the component by tests/all/hosts.rs.
            ("happyhorse-serverless", "SERVERLESS"),
        ],
        &["tests/guests", "examples/serverless"],
        // As built: only the product's component carries release metadata.
        &|_, wasm| wasm,
    );
}
