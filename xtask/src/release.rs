//! The release: the component's bytes (exactly those the tests load), what its metadata says,
//! and the source it was built from.

use crate::source::Source;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use wasm_metadata::Payload;

/// The component, its metadata and its source.
pub struct Release {
    /// The component's bytes.
    pub component: Vec<u8>,
    /// The component's name: its world's package, `empiriolabs:happyhorse`.
    pub name: String,
    /// The component's version: its contract's.
    pub version: String,
    /// What the component says about itself.
    pub metadata: ComponentMetadata,
    /// The tree it was released from.
    pub source: Source,
}

/// The metadata stamped into the component (`artifacts/build.rs`), read back with
/// `wasm-metadata` as registries and `wasm-tools metadata show` read it.
#[derive(Debug, Clone)]
pub struct ComponentMetadata {
    /// The component's name (`empiriolabs:happyhorse`), if it has one.
    pub name: Option<String>,
    /// The component's version, if it has one.
    pub version: Option<String>,
    /// One line on what it is.
    pub description: Option<String>,
    /// An SPDX expression.
    pub licenses: Option<String>,
    /// Where its source lives.
    pub source: Option<String>,
}

impl Release {
    /// The product's component as built for the tests (`video_gen_artifacts::HAPPYHORSE`),
    /// named and versioned by its own metadata.
    pub fn product(source: Source) -> Result<Self> {
        Self::of(video_gen_artifacts::HAPPYHORSE.to_vec(), source, None, None)
    }

    /// Any component, named and versioned by its metadata unless `name` or `version` say
    /// otherwise; refused when neither gives one (nothing could tag it).
    pub fn of(
        component: Vec<u8>,
        source: Source,
        name: Option<String>,
        version: Option<String>,
    ) -> Result<Self> {
        let metadata = ComponentMetadata::read(&component)?;
        let name = name
            .or_else(|| metadata.name.clone())
            .context("the component has no name in its metadata; give one")?;
        let version = version
            .or_else(|| metadata.version.clone())
            .context("the component has no version in its metadata; give a tag")?;
        Ok(Release {
            component,
            name,
            version,
            metadata,
            source,
        })
    }

    /// The component's file name in `dist/`: `happyhorse-0.3.0.wasm`.
    pub fn component_file_name(&self) -> String {
        let short = self.name.rsplit(':').next().unwrap_or(&self.name);
        format!("{short}-{}.wasm", self.version)
    }

    /// The world the component targets, `empiriolabs:happyhorse/happyhorse@0.3.0` (its package
    /// names the world after itself).
    pub fn world(&self) -> String {
        let (_, short) = self.name.split_once(':').unwrap_or(("", &self.name));
        format!("{}/{short}@{}", self.name, self.version)
    }

    /// The OCI annotations (the `org.opencontainers.image.*` keys) of the release.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut annotations = BTreeMap::new();
        let mut put = |key: &str, value: Option<&str>| {
            if let Some(value) = value {
                annotations.insert(format!("org.opencontainers.image.{key}"), value.to_string());
            }
        };
        put("title", Some(&self.name));
        put("version", Some(&self.version));
        put("description", self.metadata.description.as_deref());
        put("licenses", self.metadata.licenses.as_deref());
        put("source", self.metadata.source.as_deref());
        put("revision", Some(&self.source.revision()));
        put("created", Some(&self.created().to_rfc3339()));
        annotations
    }

    /// When the release was made: its commit's time, so that two runs agree.
    pub fn created(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(self.source.committed_at, 0).unwrap_or_default()
    }

    /// `sha256:<hex>` of the component: its layer's digest in a registry.
    pub fn component_digest(&self) -> String {
        format!("sha256:{}", sha256_hex(&self.component))
    }
}

impl ComponentMetadata {
    /// Reads the metadata of `component`.
    pub fn read(component: &[u8]) -> Result<Self> {
        let payload = Payload::from_binary(component).context("reading the wasm's metadata")?;
        let metadata = payload.metadata();
        Ok(ComponentMetadata {
            name: metadata.name.clone(),
            version: metadata.version.as_ref().map(ToString::to_string),
            description: metadata.description.as_ref().map(ToString::to_string),
            licenses: metadata.licenses.as_ref().map(ToString::to_string),
            source: metadata.source.as_ref().map(ToString::to_string),
        })
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
