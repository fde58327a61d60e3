//! Builds the product's component for wasm32-wasip2 (see `components.rs`). Test-only
//! components are built by the dev-only `tests/artifacts` crate, so a user's build of the
//! host never compiles them.

#[path = "components.rs"]
mod components;

fn main() {
    components::build_and_expose(&[("happyhorse-component", "HAPPYHORSE")], &["guest"]);
}
