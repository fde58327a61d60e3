//! WASI-HTTP for plugins: Wasmtime's implementation, with `outgoing-handler.handle` taking
//! ownership of the request options it is given.
//!
//! In `wasmtime-wasi-http` 48.0.8 `handle` reads the `request-options` a guest passes (an owned
//! handle: the guest cannot drop it afterwards) but never removes them from the store's resource
//! table. Every request that sets a timeout — every request our component sends — then leaves one
//! entry behind, and a plugin that makes about 250 requests dies on its own `max-host-resources`
//! limit: a benchmark's reused plugin, or a `wait` whose poll policy polls every 3 s for its 15
//! minutes (the default, 5–15 s, stays under it). Here Wasmtime's `handle` is shadowed by one that
//! calls it and then removes the options, as the WIT's ownership says; everything else is
//! Wasmtime's (but for the trace span bindgen wraps each call in). If a Wasmtime upgrade renames
//! the interface, the shadow would not apply: `tests/all/sandbox.rs`
//! `a_plugin_gives_back_every_host_object_when_a_call_ends` fails then.

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::p2::bindings::http::{outgoing_handler, types};
use wasmtime_wasi_http::p2::types::HostOutgoingRequest;
use wasmtime_wasi_http::{RequestOptions, WasiHttpView};

/// The interface `wasmtime-wasi-http` 48.0.8 defines (its `wit/deps/http.wit`).
const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler@0.2.12";

/// Link `wasi:http/types` and `wasi:http/outgoing-handler` for `T`, the latter's `handle`
/// freeing its options.
pub(crate) fn add_to_linker<T: WasiHttpView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    linker.allow_shadowing(true);
    linker.instance(OUTGOING_HANDLER)?.func_wrap(
        "handle",
        |mut store,
         (request, options): (
            Resource<HostOutgoingRequest>,
            Option<Resource<RequestOptions>>,
        )| {
            let mut http = store.data_mut().http();
            let owned = options.as_ref().map(Resource::rep);
            let sent = outgoing_handler::Host::handle(&mut http, request, options);
            // Freed only if the slot still holds these options: should a later Wasmtime free
            // them itself, the slot may already hold something else, which must stay.
            if let Some(rep) = owned
                && http
                    .table
                    .get(&Resource::<RequestOptions>::new_borrow(rep))
                    .is_ok()
            {
                let _ = http.table.delete(Resource::<RequestOptions>::new_own(rep));
            }
            let sent = match sent {
                Ok(future) => Ok(future),
                // A trap stays a trap; an error code goes back to the guest.
                Err(error) => Err(types::Host::convert_error_code(&mut http, error)?),
            };
            Ok((sent,))
        },
    )?;
    // Back to the default (no other code here asks for shadowing).
    linker.allow_shadowing(false);
    Ok(())
}
