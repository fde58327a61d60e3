//! The download client checks every address it connects to (docs/sandbox.md): a proxy from
//! the environment (`HTTPS_PROXY`, `ALL_PROXY`, …) would resolve and connect for it, so the
//! check would see only the proxy's address and an output URL naming an internal host would
//! be fetched anyway. Its own process: the test sets the environment.

use happyhorse_pipeline::{DownloadPolicy, download, download_client as client};
use happyhorse_sandbox::Origin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[tokio::test]
async fn a_proxy_from_the_environment_is_not_used_for_outputs() {
    // A "proxy" that counts the connections it gets (each would be `CONNECT host:443`).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    // SAFETY: set before any other thread of this test process reads the environment
    // (this file holds one test, and the runtime's workers do not read it).
    #[allow(unsafe_code)]
    unsafe {
        for name in ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
            std::env::set_var(name, &proxy);
        }
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
    }
    let policy = DownloadPolicy {
        api_origin: Origin::from_url("https://api.example.com").unwrap(),
    };
    let http = client(&policy).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A name (not a literal, which the policy judges itself) that the client's own resolver
    // would have to look up: `.invalid` never resolves, so without a proxy nothing connects.
    let result = download(
        &http,
        &policy,
        "https://metadata.invalid/latest/meta-data",
        dir.path(),
        "clip",
    )
    .await;
    assert!(result.is_err());
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "the download went through the environment's proxy, past the resolver's address check"
    );
}
