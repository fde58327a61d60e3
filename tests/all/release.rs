//! The release as its users get it: `cargo xtask dist` and `cargo xtask publish` run as a
//! maintainer runs them (a nested `cargo`, building the xtask in its own workspace), the files
//! checked with `sha256sum`, the registry Debian's `docker-registry`, the pulls done by skopeo
//! and by an Obelisk deployment that names the component by digest.
//!
//! The registry, skopeo and openssl are Debian packages (`.ci/run` installs them); Obelisk is a
//! host built by `scripts/install-hosts.sh`. Without them the registry test prints `SKIPPED`,
//! except in CI (`CI` set), where that is a failure.

use crate::hosts::{
    Run, Server, assert_completed, build_obelisk_workflow, examples, find_tool, free_port, in_ci,
    missing_host, obelisk_site_in, run, wait_for_http, workspace,
};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use video_gen_tests::*;

type Test = Result<(), Box<dyn std::error::Error>>;

/// The contract's (and so the component's) version.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The repository `publish` pushes the component to by default.
const REPOSITORY: &str = "empiriolabs/happyhorse";

/// `cargo xtask ARGS` from the workspace root. The first run builds the xtask and the
/// component in `xtask/target` (minutes on two cores).
pub(crate) async fn xtask(args: &[&str]) -> Run {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace())
        .arg("xtask")
        .args(args)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR");
    run(command, Duration::from_secs(1200)).await
}

/// Whether the checkout has uncommitted changes (a developer's tree; CI's clone is clean).
fn tree_is_dirty() -> bool {
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(workspace())
        .args(["status", "--porcelain", "--untracked-files=all"])
        .output()
        .expect("git status");
    !status.stdout.is_empty()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every file under `dir`, as paths relative to it with `/` separators.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).expect("a readable folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).expect("under dir");
                found.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dist_ships_the_tested_component_its_contract_and_checksums() -> Test {
    let out = tempfile::tempdir()?;
    let dist = out.path().join("dist");
    let dist_arg = dist.to_str().expect("a UTF-8 temp path");
    let first = xtask(&["dist", "--out", dist_arg]).await;
    assert!(first.success, "{}", first.describe());

    // The component is the bytes the tests load: built again in the xtask's own target
    // directory, by the same build script, it comes out byte for byte the same.
    let component = std::fs::read(dist.join(format!("happyhorse-{VERSION}.wasm")))?;
    assert!(
        component == video_gen_artifacts::HAPPYHORSE,
        "dist's component ({} B, sha256 {}) is not the one the tests ran ({} B, sha256 {})",
        component.len(),
        sha256_hex(&component),
        video_gen_artifacts::HAPPYHORSE.len(),
        sha256_hex(video_gen_artifacts::HAPPYHORSE)
    );

    // The contract alone, as WIT packages encoded in wasm, one per package.
    let wit = [
        format!("wit/empiriolabs-happyhorse@{VERSION}.wasm"),
        format!("wit/videogen-api@{VERSION}.wasm"),
    ];
    for package in &wit {
        let bytes = std::fs::read(dist.join(package))?;
        for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
            payload.map_err(|e| format!("{package} does not parse as wasm: {e}"))?;
        }
        assert!(
            wasmparser::Parser::is_component(&bytes),
            "{package} is a WIT package, encoded as a component"
        );
    }

    // SHA256SUMS covers every other file, and `sha256sum` (not our code) agrees with it.
    let mut expected: Vec<String> = vec![
        format!("happyhorse-{VERSION}.wasm"),
        format!("python/happyhorse-{VERSION}-py3-none-any.whl"),
        format!("npm/happyhorse-{VERSION}.tgz"),
        "release.json".into(),
        "SHA256SUMS".into(),
    ];
    expected.extend(wit.iter().cloned());
    expected.sort();
    assert_eq!(files_under(&dist), expected);
    let sums = std::fs::read_to_string(dist.join("SHA256SUMS"))?;
    let mut covered: Vec<&str> = sums
        .lines()
        .map(|l| l.split_once("  ").expect("`sha256sum` format").1)
        .collect();
    covered.sort();
    let mut others = expected.clone();
    others.retain(|f| f != "SHA256SUMS");
    assert_eq!(covered, others, "SHA256SUMS covers every other file");
    let mut check = Command::new("sha256sum");
    check
        .current_dir(&dist)
        .args(["--check", "--strict", "SHA256SUMS"]);
    let checked = run(check, Duration::from_secs(60)).await;
    assert!(checked.success, "{}", checked.describe());

    // release.json says what was built from what; the revision is the checkout's.
    let release: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dist.join("release.json"))?)?;
    assert_eq!(release["version"], VERSION);
    assert_eq!(release["name"], "empiriolabs:happyhorse");
    assert_eq!(
        release["world"],
        format!("empiriolabs:happyhorse/happyhorse@{VERSION}")
    );
    let head = std::process::Command::new("git")
        .arg("-C")
        .arg(workspace())
        .args(["rev-parse", "HEAD"])
        .output()?;
    let head = String::from_utf8(head.stdout)?.trim().to_string();
    let dirty = tree_is_dirty();
    assert_eq!(release["dirty"], dirty, "{release}");
    let revision = if dirty { format!("{head}-dirty") } else { head };
    assert_eq!(release["revision"], revision);
    if dirty {
        assert!(
            first
                .stderr
                .contains("warning: the tree differs from commit"),
            "a dirty tree is said so: {}",
            first.describe()
        );
    }

    // A second run on the same tree writes the same files: release.json, the wheel and the
    // tarball (their times are the commit's). (The component is the same bytes baked into
    // the xtask; its reproducibility is the comparison with the test binary's above.)
    let before: Vec<(String, Vec<u8>)> = expected
        .iter()
        .map(|f| (f.clone(), std::fs::read(dist.join(f)).expect("a dist file")))
        .collect();
    let second = xtask(&["dist", "--out", dist_arg]).await;
    assert!(second.success, "{}", second.describe());
    for (file, bytes) in before {
        assert!(
            std::fs::read(dist.join(&file))? == bytes,
            "{file} changed between two runs"
        );
    }

    // A folder dist did not write is never replaced: not one without release.json, not one
    // whose release.json is someone else's, not an earlier dist with a file added to it.
    let theirs = out.path().join("theirs");
    std::fs::create_dir(&theirs)?;
    std::fs::write(theirs.join("notes.txt"), "mine")?;
    let added = out.path().join("dist-plus");
    std::fs::rename(&dist, &added)?;
    std::fs::write(added.join("notes.txt"), "mine")?;
    for (folder, release_json) in [(&theirs, None), (&theirs, Some("{}")), (&added, None)] {
        if let Some(json) = release_json {
            std::fs::write(folder.join("release.json"), json)?;
        }
        let refused = xtask(&["dist", "--out", folder.to_str().expect("UTF-8")]).await;
        assert_eq!(refused.code, Some(2), "{}", refused.describe());
        assert!(
            refused.stderr.contains("did not write"),
            "{}",
            refused.describe()
        );
        assert_eq!(std::fs::read_to_string(folder.join("notes.txt"))?, "mine");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_refuses_bad_references_and_reports_an_unreachable_registry() -> Test {
    for (registry, says) in [
        ("http://127.0.0.1:5000", "no scheme"),
        ("127.0.0.1:5000/path", "no scheme, no path"),
        ("127.0.0.1:http", "is not a port"),
        ("myregistry", "would be read as a path on docker.io"),
    ] {
        let refused = xtask(&["publish", "--registry", registry]).await;
        assert_eq!(refused.code, Some(2), "{registry}: {}", refused.describe());
        assert!(
            refused.stderr.contains(says),
            "{registry}: {}",
            refused.describe()
        );
    }

    // Nothing listens on port 1 (a port from free_port() could be taken by another test's
    // server meanwhile): a clear error and exit 1, and no digest printed.
    let failed = xtask(&["publish", "--registry", "127.0.0.1:1"]).await;
    assert_eq!(failed.code, Some(1), "{}", failed.describe());
    assert!(
        failed.stderr.contains("cannot be reached"),
        "{}",
        failed.describe()
    );
    assert!(!failed.stdout.contains("digest:"), "{}", failed.describe());
    Ok(())
}

// ---- A real registry: Debian's docker-registry ---------------------------------------------------

/// A `docker-registry` process on a free 127.0.0.1 port, storing under `storage`; over TLS when
/// given a certificate and key.
fn start_registry(
    dir: &Path,
    storage: &Path,
    name: &str,
    tls: Option<(&Path, &Path)>,
) -> (Server, u16) {
    let port = free_port();
    let tls = tls
        .map(|(cert, key)| {
            format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            )
        })
        .unwrap_or_default();
    let config = dir.join(format!("{name}.yml"));
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n{tls}",
            storage.display()
        ),
    )
    .expect("the registry's config");
    let mut command = Command::new("docker-registry");
    command.arg("serve").arg(&config);
    (
        Server::start(command, dir.join(format!("{name}.log"))),
        port,
    )
}

/// A CA and a server certificate it signs for 127.0.0.1 (and localhost), made with openssl in
/// `dir`: returns (ca.pem, server.pem, server.key).
async fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1, DNS:localhost\nextendedKeyUsage = serverAuth\n\
         basicConstraints = CA:FALSE\n",
    )
    .expect("the extensions file");
    // Run in `dir`, so every file is named by a plain relative name.
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=happyhorse test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-set_serial",
            "2",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    ];
    for step in steps {
        let mut openssl = Command::new("openssl");
        openssl.current_dir(dir).args(step);
        let made = run(openssl, Duration::from_secs(60)).await;
        assert!(made.success, "openssl {step:?}\n{}", made.describe());
    }
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// The line `publish` prints as `LABEL: value`.
fn printed<'a>(published: &'a Run, label: &str) -> &'a str {
    published
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no `{label}` line\n{}", published.describe()))
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

/// Tools this test needs that CI installs; their absence skips it locally.
fn registry_tools(test: &str) -> Option<PathBuf> {
    for tool in ["docker-registry", "skopeo", "openssl"] {
        if !on_path(tool) {
            let what =
                format!("no `{tool}` on PATH (apt-get install docker-registry skopeo openssl)");
            if in_ci() {
                panic!("{test}: {what}. CI is set, so this is a failure: .ci/run installs it.");
            }
            crate::hosts::announce(&format!("SKIPPED {test}: {what}"));
            return None;
        }
    }
    match find_tool("OBELISK_BIN", "obelisk") {
        Some(obelisk) => Some(obelisk),
        None => {
            missing_host(test, "no obelisk (OBELISK_BIN or `obelisk` on PATH)");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_component_is_pulled_by_digest_by_skopeo_and_by_an_obelisk_deployment() -> Test {
    let test = "published_component_is_pulled_by_digest_by_skopeo_and_by_an_obelisk_deployment";
    let Some(obelisk) = registry_tools(test) else {
        return Ok(());
    };
    let work = tempfile::tempdir()?;
    let storage = work.path().join("storage");
    std::fs::create_dir(&storage)?;
    // One store, two doors: plain HTTP for the publisher and for reading it back as the issue's
    // checker does, TLS for Obelisk, whose OCI client speaks only HTTPS.
    let (ca, cert, key) = certificates(work.path()).await;
    let (mut plain, plain_port) = start_registry(work.path(), &storage, "plain", None);
    let (mut tls, tls_port) = start_registry(work.path(), &storage, "tls", Some((&cert, &key)));
    wait_for_http(
        &format!("http://127.0.0.1:{plain_port}/v2/"),
        &mut plain,
        Duration::from_secs(30),
    )
    .await;
    let registry = format!("127.0.0.1:{plain_port}");

    // As the checker runs it: no flag but the registry (a dirty developer tree is only
    // a warning for a loopback registry).
    let published = xtask(&["publish", "--registry", registry.as_str()]).await;
    assert!(
        published.success,
        "{}\n{}",
        published.describe(),
        plain.output()
    );
    let digest = printed(&published, "digest:").to_string();
    // Again: the same component under its tag is no conflict, and the manifest (its times are
    // the commit's) comes out with the same digest.
    let again = xtask(&["publish", "--registry", registry.as_str()]).await;
    assert!(again.success, "{}", again.describe());
    assert_eq!(
        printed(&again, "digest:"),
        digest,
        "a re-publish is the same manifest"
    );
    assert_eq!(
        printed(&published, "pinned:"),
        format!("{registry}/{REPOSITORY}@{digest}")
    );

    // The manifest and its blobs, read with plain HTTP.
    let http = reqwest::Client::new();
    let base = format!("http://{registry}/v2/{REPOSITORY}");
    let response = http
        .get(format!("{base}/manifests/{VERSION}"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["docker-content-digest"].to_str()?,
        digest,
        "the tag names the printed digest"
    );
    let manifest_bytes = response.bytes().await?;
    assert_eq!(format!("sha256:{}", sha256_hex(&manifest_bytes)), digest);
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes)?;
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    let annotations = &manifest["annotations"];
    assert_eq!(annotations["org.opencontainers.image.version"], VERSION);
    assert_eq!(
        annotations["org.opencontainers.image.licenses"],
        env!("CARGO_PKG_LICENSE")
    );
    assert_eq!(
        annotations["org.opencontainers.image.source"],
        env!("CARGO_PKG_REPOSITORY")
    );
    assert!(
        annotations["org.opencontainers.image.description"]
            .as_str()
            .is_some_and(|d| d.contains("HappyHorse")),
        "{manifest}"
    );
    let blob = |digest: &serde_json::Value| {
        let url = format!("{base}/blobs/{}", digest.as_str().expect("a digest"));
        let http = http.clone();
        async move { http.get(url).send().await?.bytes().await }
    };
    let layer = blob(&layers[0]["digest"]).await?;
    assert!(
        layer == video_gen_artifacts::HAPPYHORSE,
        "the layer is the component the tests ran, byte for byte"
    );
    let config: serde_json::Value =
        serde_json::from_slice(&blob(&manifest["config"]["digest"]).await?)?;
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2");
    assert_eq!(
        config["component"]["target"],
        format!("empiriolabs:happyhorse/happyhorse@{VERSION}")
    );
    assert!(
        config["component"]["exports"].as_array().is_some_and(|e| e
            .iter()
            .any(|x| x == &format!("videogen:api/video-gen@{VERSION}"))),
        "{config}"
    );

    // A standard tool pulls the same bytes by digest.
    let layout = work.path().join("pulled");
    let mut skopeo = Command::new("skopeo");
    skopeo
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{registry}/{REPOSITORY}@{digest}"))
        .arg(format!("dir:{}", layout.display()));
    let pulled = run(skopeo, Duration::from_secs(120)).await;
    assert!(pulled.success, "{}", pulled.describe());
    let layer_hex = layers[0]["digest"]
        .as_str()
        .and_then(|d| d.strip_prefix("sha256:"))
        .expect("a sha256 digest");
    let skopeo_layer = std::fs::read(layout.join(layer_hex))?;
    assert!(
        skopeo_layer == video_gen_artifacts::HAPPYHORSE,
        "skopeo's copy of the layer is the component"
    );

    // Obelisk, pinned by digest, pulls both components over TLS and generates a clip.
    let workflow = build_obelisk_workflow().await;
    let workflow_repository = "empiriolabs/happyhorse-workflow";
    let workflow_path = workflow.to_str().expect("a UTF-8 path");
    // Another component under the component's own tag is refused: hosts pull that tag.
    let moved = xtask(&[
        "publish",
        "--registry",
        &registry,
        "--component",
        workflow_path,
        "--repository",
        REPOSITORY,
        "--tag",
        VERSION,
    ])
    .await;
    assert_eq!(moved.code, Some(2), "{}", moved.describe());
    assert!(
        moved.stderr.contains("already names another component"),
        "{}",
        moved.describe()
    );
    let workflow_published = xtask(&[
        "publish",
        "--registry",
        &registry,
        "--component",
        workflow_path,
        "--repository",
        workflow_repository,
        "--tag",
        VERSION,
    ])
    .await;
    assert!(
        workflow_published.success,
        "{}",
        workflow_published.describe()
    );
    let workflow_digest = printed(&workflow_published, "digest:").to_string();

    wait_for_https(&mut tls, tls_port).await;
    let tls_registry = format!("127.0.0.1:{tls_port}");
    let deployment = std::fs::read_to_string(examples().join("obelisk/deployment.toml"))?;
    let component_line = "location = \"${DEPLOYMENT_DIR}/wasm/happyhorse_component.wasm\"";
    let workflow_line = "location = \"${DEPLOYMENT_DIR}/wasm/happyhorse_workflow.wasm\"";
    assert!(deployment.contains(component_line) && deployment.contains(workflow_line));
    let deployment = deployment
        .replace(
            component_line,
            &format!("location = \"oci://{tls_registry}/{REPOSITORY}@{digest}\""),
        )
        .replace(
            workflow_line,
            &format!("location = \"oci://{tls_registry}/{workflow_repository}@{workflow_digest}\""),
        );
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("deployment.toml"), deployment)?;
    let mut site = obelisk_site_in(obelisk, dir);
    // Obelisk's TLS stack trusts only these roots when SSL_CERT_FILE is set.
    site.env
        .push(("SSL_CERT_FILE".into(), ca.clone().into_os_string()));
    let emu = emulator(fast()).await;
    let server = site.start(&emu, "server.log").await;
    let execution = site.submit(&emu, &server, 200).await;
    let result = site.result(&execution, &server).await;
    assert_completed(&result, &emu, &server);
    assert_eq!(
        emu.submits_received(),
        1,
        "exactly one submit reached the API"
    );
    let cached = files_under(&site.dir.path().join("obelisk-cache"));
    assert!(
        !cached.is_empty(),
        "Obelisk pulled the components into its cache"
    );
    drop(server);
    tls.stop();
    plain.stop();
    Ok(())
}

/// Waits until the TLS registry accepts connections (its certificate is not checked here:
/// Obelisk checks it).
async fn wait_for_https(server: &mut Server, port: u16) {
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("the TLS registry exited ({status})\n{}", server.output());
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the TLS registry did not listen\n{}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
