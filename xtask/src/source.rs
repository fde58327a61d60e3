//! What the source tree is: the commit it was checked out at, whether it differs from that
//! commit, and when the commit was made. Read with `git`; a tree that is not a git checkout
//! counts as dirty, since nothing shows what it was built from.

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

/// The source tree's state, as it goes into the release's metadata.
#[derive(Debug, Clone)]
pub struct Source {
    /// The commit's full hash, or `unknown` outside a git checkout.
    pub commit: String,
    /// What differs from the commit (`git status --porcelain` lines: modified, added, deleted
    /// and untracked files; ignored ones are not counted). Empty on a clean tree.
    pub changes: Vec<String>,
    /// The commit's time (seconds since the Unix epoch): the release's creation time, so that
    /// two runs on one commit write the same metadata.
    pub committed_at: i64,
}

impl Source {
    /// Reads the state of the checkout at `root`.
    pub fn read(root: &Path) -> Self {
        match Self::from_git(root) {
            Ok(source) => source,
            Err(error) => Source {
                commit: "unknown".into(),
                changes: vec![format!("not a git checkout ({error:#})")],
                committed_at: 0,
            },
        }
    }

    fn from_git(root: &Path) -> Result<Self> {
        let commit = git(root, &["rev-parse", "HEAD"])?.trim().to_string();
        let committed_at = git(root, &["log", "-1", "--format=%ct", "HEAD"])?
            .trim()
            .parse()
            .context("git log printed no commit time")?;
        let changes = git(root, &["status", "--porcelain=v1", "--untracked-files=all"])?
            .lines()
            .map(str::to_string)
            .collect();
        Ok(Source {
            commit,
            changes,
            committed_at,
        })
    }

    /// True when the tree differs from its commit.
    pub fn is_dirty(&self) -> bool {
        !self.changes.is_empty()
    }

    /// The revision as the metadata records it: the commit, with `-dirty` appended when the
    /// tree differs from it (`git describe --dirty`'s convention).
    pub fn revision(&self) -> String {
        if self.is_dirty() {
            format!("{}-dirty", self.commit)
        } else {
            self.commit.clone()
        }
    }
}

fn git(root: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .context("running git")?;
    if !output.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).context("git printed something that is not UTF-8")
}
