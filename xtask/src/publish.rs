//! `cargo xtask publish`: the component pushed to an OCI registry in the wasm artifact layout
//! (oci-wasm: config `application/vnd.wasm.config.v0+json` naming the world, one
//! `application/wasm` layer), tagged with its version and annotated, then pulled back and
//! compared byte for byte before the digest is printed: nothing half-pushed is reported done.

use crate::release::Release;
use crate::source::Source;
use crate::{Failure, workspace_root};
use anyhow::{Context, Result, anyhow, bail};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_wasm::{WasmClient, WasmConfig};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// `cargo xtask publish`'s arguments.
#[derive(clap::Args)]
pub struct PublishArgs {
    /// The registry: HOST or HOST:PORT, no scheme (IPv6 literals are not accepted). A loopback
    /// host (localhost, 127.x.y.z) is reached over plain HTTP unless --ca-cert is given; any
    /// other over HTTPS.
    #[arg(long, value_name = "HOST:PORT")]
    registry: String,
    /// The repository in the registry.
    #[arg(long, default_value = "empiriolabs/happyhorse")]
    repository: String,
    /// The tag (default: the component's version).
    #[arg(long)]
    tag: Option<String>,
    /// Publish this component instead of the product's; a core module that embeds its WIT
    /// (the example Obelisk workflow) is encoded as a component first. Named by --repository,
    /// versioned by its metadata unless --tag is given.
    #[arg(long, value_name = "FILE")]
    component: Option<PathBuf>,
    /// Trust this CA certificate (PEM) as well as the system's, and speak TLS even to a
    /// loopback registry.
    #[arg(long, value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    /// Publish from a tree that differs from its commit to a registry that is not on this
    /// machine (the revision annotation then says `<commit>-dirty`). A loopback registry is
    /// for trying things: there a dirty tree is only a warning.
    #[arg(long)]
    allow_dirty: bool,
    /// Move the tag even when it already names another component.
    #[arg(long)]
    force: bool,
}

/// The account, from `OCI_USERNAME` and `OCI_PASSWORD` (a token for most registries), or
/// anonymous when neither is set.
const USERNAME_ENV: &str = "OCI_USERNAME";
const PASSWORD_ENV: &str = "OCI_PASSWORD";

/// Pushes, verifies and prints the digest.
pub fn run(args: PublishArgs) -> Result<(), Failure> {
    let plan = Plan::new(args).map_err(Failure::Refused)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let digest = runtime.block_on(plan.push_and_verify())?;
    let pinned = format!(
        "{}/{}@{digest}",
        plan.reference.registry(),
        plan.reference.repository()
    );
    println!(
        "published {} {} as {}",
        plan.release.name,
        plan.release.version,
        plan.reference.whole()
    );
    println!("digest: {digest}");
    println!("pinned: {pinned}");
    println!("Obelisk: location = \"oci://{pinned}\"");
    Ok(())
}

/// Everything checked before the first byte is sent.
struct Plan {
    release: Release,
    reference: Reference,
    /// True for the product's component, whose config names its world.
    product: bool,
    client: Client,
    auth: RegistryAuth,
    /// Move a tag that names another component.
    force: bool,
}

impl Plan {
    fn new(args: PublishArgs) -> Result<Self> {
        let host = registry_host(&args.registry)?;
        let root = workspace_root();
        let source = Source::read(&root);
        let product = args.component.is_none();
        let release = match &args.component {
            None => Release::product(source)?,
            Some(file) => {
                let bytes =
                    std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
                let bytes = componentized(bytes)
                    .with_context(|| format!("{} is not a component to publish", file.display()))?;
                let name = Some(args.repository.clone());
                Release::of(bytes, source, name, args.tag.clone())
                    .with_context(|| format!("{} is not a component to publish", file.display()))?
            }
        };
        let tag = args.tag.clone().unwrap_or_else(|| release.version.clone());
        let whole = format!("{}/{}:{tag}", args.registry, args.repository);
        let reference = Reference::from_str(&whole)
            .map_err(|e| anyhow!("`{whole}` is not an OCI reference: {e}"))?;
        // A host without a dot or a port is read as a Docker Hub path: refuse rather than push
        // somewhere the user did not name.
        if reference.registry() != args.registry {
            bail!(
                "`{}` would be read as a path on {}: name the registry with its port \
                 (HOST:PORT) or full domain",
                args.registry,
                reference.registry()
            );
        }
        if release.source.is_dirty() && is_loopback(host) && !args.allow_dirty {
            eprintln!(
                "warning: the tree differs from commit {}; publishing it as {} to a loopback \
                 registry",
                release.source.commit,
                release.source.revision()
            );
        } else if release.source.is_dirty() && !args.allow_dirty {
            bail!(
                "the tree differs from commit {} ({} change(s), first: {}); commit first, or \
                 pass --allow-dirty to publish it as {}",
                release.source.commit,
                release.source.changes.len(),
                release.source.changes[0],
                release.source.revision()
            );
        }
        let client = client(&args.registry, host, args.ca_cert.as_ref())?;
        Ok(Plan {
            release,
            reference,
            product,
            client,
            auth: auth_from_env()?,
            force: args.force,
        })
    }

    /// Pushes the manifest, config and layer; then reads them back by digest and compares the
    /// layer with the component, byte for byte. Returns the manifest's digest.
    async fn push_and_verify(&self) -> Result<String, Failure> {
        let registry = self.reference.registry();
        let (mut config, layer) =
            WasmConfig::from_raw_component(self.release.component.clone(), None)
                .context("describing the component for the registry")?;
        config.created = self.release.created();
        if let (true, Some(component)) = (self.product, config.component.as_mut()) {
            component.target = Some(self.release.world());
        }
        let annotations = self.release.annotations();
        let client = WasmClient::new(self.client.clone());
        self.check_tag_is_free(&client).await?;
        client
            .push(
                &self.reference,
                &self.auth,
                layer,
                config.with_annotations(annotations.clone()),
                Some(annotations),
            )
            .await
            .map_err(|e| explain(e, registry, "pushing to"))?;

        let digest = client
            .fetch_manifest_digest(&self.reference, &self.auth)
            .await
            .map_err(|e| explain(e.into(), registry, "reading back the tag from"))?;
        let pinned = self.reference.clone_with_digest(digest.clone());
        let pulled = client
            .pull(&pinned, &self.auth)
            .await
            .map_err(|e| explain(e, registry, "pulling back the push from"))?;
        let layer = pulled.layers.first().map(|layer| &layer.data[..]);
        let revision = pulled
            .manifest
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get("org.opencontainers.image.revision"));
        // The tag may have moved between the push and the read-back (another publisher): the
        // manifest read must carry this push's layer and revision, or nothing is reported.
        if layer != Some(&self.release.component[..])
            || revision != Some(&self.release.source.revision())
        {
            return Err(Failure::Failed(anyhow!(
                "{} answered for {} with another manifest than the one pushed (the tag moved, \
                 or the registry altered it): the push is not reported as done",
                registry,
                pinned.whole()
            )));
        }
        Ok(digest)
    }
}

impl Plan {
    /// Refuses (exit 2) to move a tag that already names another component, unless --force:
    /// a version's tag is what hosts pull. The same component again (a re-run of one commit)
    /// is fine.
    async fn check_tag_is_free(&self, client: &WasmClient) -> Result<(), Failure> {
        let registry = self.reference.registry();
        let existing = match client
            .pull_manifest_and_config(&self.reference, &self.auth)
            .await
        {
            Ok((manifest, _, digest)) => (manifest, digest),
            Err(error) => {
                let missing = matches!(
                    error.downcast_ref::<OciDistributionError>(),
                    Some(
                        OciDistributionError::ImageManifestNotFoundError(_)
                            | OciDistributionError::RegistryError { .. }
                            | OciDistributionError::ServerError { code: 404, .. }
                    )
                );
                if missing {
                    return Ok(());
                }
                // A manifest of another kind under the tag is "another component" too.
                if error.downcast_ref::<OciDistributionError>().is_none() {
                    return self.refuse_moving_tag("an artifact that is not a wasm component");
                }
                return Err(Failure::Failed(explain(
                    error,
                    registry,
                    "reading the tag from",
                )));
            }
        };
        let ours = self.release.component_digest();
        if existing.0.layers.first().map(|l| l.digest.as_str()) == Some(ours.as_str()) {
            return Ok(());
        }
        self.refuse_moving_tag(&format!("another component ({})", existing.1))
    }

    fn refuse_moving_tag(&self, what: &str) -> Result<(), Failure> {
        if self.force {
            return Ok(());
        }
        Err(Failure::Refused(anyhow!(
            "{} already names {what}; publish under another --tag, or pass --force to move it",
            self.reference.whole()
        )))
    }
}

/// `wasm` as a component: a component as it is; a core module that carries its WIT (as
/// `wit-bindgen` embeds it; the example Obelisk workflow is one) encoded into one, the way
/// Obelisk does for a module it loads from a file. A registry's wasm artifact is a component:
/// Obelisk refuses to pull anything else.
fn componentized(wasm: Vec<u8>) -> Result<Vec<u8>> {
    if wasmparser::Parser::is_component(&wasm) {
        return Ok(wasm);
    }
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&wasm)
        .context("reading the core module's embedded WIT")?
        .encode()
        .context("encoding the core module as a component")
}

/// The host part of `registry` (HOST or HOST:PORT); refuses schemes, paths and bad ports.
fn registry_host(registry: &str) -> Result<&str> {
    if registry.contains("://") || registry.contains('/') || registry.is_empty() {
        bail!("--registry takes HOST:PORT (no scheme, no path), not `{registry}`");
    }
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') => (host, Some(port)),
        _ => (registry, None),
    };
    if let Some(port) = port {
        port.parse::<u16>()
            .map_err(|_| anyhow!("--registry `{registry}`: `{port}` is not a port"))?;
    }
    Ok(host)
}

/// `localhost` or a loopback IPv4 address; a name that merely starts with `127.` is not.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An OCI client: plain HTTP for a loopback registry (unless a CA is given), HTTPS otherwise;
/// bounded connect and read times, so a registry that does not answer is an error, not a hang.
fn client(registry: &str, host: &str, ca_cert: Option<&PathBuf>) -> Result<Client> {
    // reqwest's rustls without a provider of its own: ring, as Obelisk builds it (aws-lc would
    // need a C toolchain). rustls 0.23.48 deprecates ring's provider for lacking post-quantum
    // key exchange; pushing a public artifact does not need it. A second install is harmless.
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = ClientConfig {
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(60)),
        ..ClientConfig::default()
    };
    match ca_cert {
        Some(path) => {
            let data = std::fs::read(path)
                .with_context(|| format!("reading the CA certificate {}", path.display()))?;
            config.extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        None if is_loopback(host) => {
            config.protocol = ClientProtocol::HttpsExcept(vec![registry.to_string()]);
        }
        None => {}
    }
    Client::try_from(config).context("setting up the registry client")
}

fn auth_from_env() -> Result<RegistryAuth> {
    match (std::env::var(USERNAME_ENV), std::env::var(PASSWORD_ENV)) {
        (Ok(user), Ok(password)) => Ok(RegistryAuth::Basic(user, password)),
        (Err(_), Err(_)) => Ok(RegistryAuth::Anonymous),
        _ => bail!("set both {USERNAME_ENV} and {PASSWORD_ENV}, or neither (anonymous)"),
    }
}

/// `error` with what was being done, and for an unreachable registry what to check.
fn explain(error: anyhow::Error, registry: &str, doing: &str) -> anyhow::Error {
    // oci-client's request errors are `#[error(transparent)]`, so the reqwest error is the
    // top of the chain's payload, not one of its sources: look there, then at the I/O causes.
    let request_failed = matches!(
        error.downcast_ref::<OciDistributionError>(),
        Some(OciDistributionError::RequestError(e)) if e.is_connect() || e.is_timeout()
    );
    let io_failed = error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| {
            use std::io::ErrorKind::*;
            matches!(
                e.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | TimedOut
                    | HostUnreachable
                    | NetworkUnreachable
                    | AddrNotAvailable
            )
        })
    });
    let unreachable = request_failed || io_failed;
    if unreachable {
        error.context(format!(
            "{doing} {registry}: the registry cannot be reached (is it running there, and does \
             it speak the protocol used: plain HTTP for loopback hosts unless --ca-cert is \
             given, HTTPS otherwise?)"
        ))
    } else {
        error.context(format!("{doing} {registry}"))
    }
}
