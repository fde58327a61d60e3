//! A completed job's outputs downloaded into the output folder, each file named after its
//! shot (never the URL), checked against what was paid for ([`crate::clip`]) and journaled
//! with its size, SHA-256 and that check. A clip that fails the check is kept and reported,
//! never resubmitted (that would pay twice).

use super::OutputNames;
use super::step::Outcome;
use super::{Cause, Flow, MAX_DOWNLOAD_ATTEMPTS, Runner};
use crate::advice::describe;
use crate::clip::{self, PaidFor, ReadError};
use crate::download::{download, redact_query};
use crate::journal::{FileRecord, State};
use crate::untrusted::job_file_stem;
use anyhow::{Context, Result};
use happyhorse_sandbox::Plugin;
use happyhorse_sandbox::api::JobState;
use std::time::Duration;

/// The shot a download is for, and what names its files.
pub(super) struct Fetch<'s> {
    pub(super) name: &'s str,
    pub(super) output: &'s str,
    pub(super) job_id: &'s str,
    /// What the job was billed for, when known: each clip is checked against it.
    pub(super) paid_for: Option<PaidFor>,
}

impl Runner<'_> {
    /// Download `completed` outputs (→ `downloaded`); a failed download polls the job again
    /// for fresh URLs (they are signed and expire) and retries.
    pub(super) async fn fetch(
        &self,
        Fetch {
            name,
            output,
            job_id,
            paid_for,
        }: Fetch<'_>,
        mut urls: Vec<String>,
        slot: &mut Option<Plugin>,
        cause: &mut Option<Cause>,
    ) -> Result<Flow> {
        let mut attempt = 0;
        let mut here = State::Completed {
            job_id: job_id.to_string(),
            urls: urls.clone(),
        };
        loop {
            if self.stopping() {
                return Ok(Flow::Stop);
            }
            attempt += 1;
            self.progress.state(name, "downloading", "");
            let error = match self
                .download_all(
                    output,
                    job_id,
                    &urls,
                    paid_for.as_ref(),
                    attempt >= MAX_DOWNLOAD_ATTEMPTS,
                )
                .await
            {
                Ok(files) => {
                    self.apply(name, &here, Outcome::Downloaded { files })?;
                    return Ok(Flow::Next);
                }
                Err(e) => e,
            };
            tracing::warn!(shot = %name, attempt, error = %crate::untrusted::shown(&format!("{error:#}")), "download failed");
            if attempt >= MAX_DOWNLOAD_ATTEMPTS {
                *cause = Some(Cause::Download(format!("{error:#}")));
                let outcome = Outcome::GaveUp {
                    code: "download".into(),
                    message: format!(
                        "downloading failed {attempt} times: {error:#}; run again to retry"
                    ),
                };
                self.apply(name, &here, outcome)?;
                return Ok(Flow::Next);
            }
            if !self.pause(Duration::from_millis(250 << attempt)).await {
                return Ok(Flow::Stop);
            }
            // Fresh, freshly signed URLs.
            let plugin = self.plugin(slot).await?;
            match plugin.poll(&self.config, job_id).await {
                Ok(Ok(status)) => match status.state {
                    JobState::Completed(fresh) if !fresh.is_empty() => {
                        let outcome = Outcome::Completed {
                            urls: fresh.clone(),
                        };
                        if let Some(state) = self.apply(name, &here, outcome)? {
                            (urls, here) = (fresh, state);
                        }
                    }
                    JobState::Expired | JobState::Cancelled => {
                        *cause = Some(Cause::JobEnded(status.raw_status.clone()));
                        let outcome = Outcome::JobEnded {
                            message: format!(
                                "the job's outputs are gone: it is now {}",
                                status.raw_status
                            ),
                            code: status.raw_status,
                        };
                        self.apply(name, &here, outcome)?;
                        return Ok(Flow::Next);
                    }
                    other => {
                        tracing::warn!(shot = %name, state = ?other, "re-polling a completed job gave no URLs; retrying the old ones");
                    }
                },
                Ok(Err(e)) => {
                    tracing::warn!(shot = %name, error = %describe(&e), "re-polling for fresh URLs failed");
                }
                Err(failure) => {
                    *slot = None;
                    tracing::warn!(shot = %name, error = %failure, "plugin failed while re-polling");
                }
            }
        }
    }

    async fn download_all(
        &self,
        output: &str,
        job_id: &str,
        urls: &[String],
        paid_for: Option<&PaidFor>,
        last_attempt: bool,
    ) -> Result<Vec<FileRecord>> {
        let mut files = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            let stem = match self.names {
                OutputNames::Shot => output_stem(output, i, urls.len()),
                // Checked when journaled; checked again here, where it names files.
                OutputNames::Job => {
                    format!("{}-{i}", job_file_stem(job_id).map_err(anyhow::Error::msg)?)
                }
            };
            let file = download(
                &self.http,
                &self.session.downloads,
                url,
                &self.options.out_dir,
                &stem,
            )
            .await
            .with_context(|| format!("downloading {}", redact_query(url)))?;
            let path = file.path.clone();
            let read = tokio::task::spawn_blocking(move || clip::inspect(&path))
                .await
                .unwrap_or_else(|e| Err(ReadError::Host(format!("the check did not finish: {e}"))));
            // A file that is not a readable MP4 may be the storage's passing failure (an error
            // page, a cut-off object): downloading again is free, so it is, with fresh URLs,
            // before the last attempt keeps it as what was delivered.
            if let (Err(ReadError::NotMp4(why)), false) = (&read, last_attempt) {
                anyhow::bail!(
                    "{} is not a readable MP4 ({why}); downloading it again",
                    file.file_name
                );
            }
            let check = clip::judge(paid_for.cloned(), read);
            if check.failed() {
                tracing::warn!(file = %file.file_name, summary = %check.summary, "the clip is not what was paid for");
            }
            files.push(FileRecord {
                path: file.file_name,
                bytes: file.bytes,
                sha256: file.sha256,
                check: Some(check),
            });
        }
        Ok(files)
    }
}

/// The file stem of a job's output `index` of `count`: `<output>`, or `<output>-<n>` when a
/// job has several. The extension follows the content type ([`download`]); the URL names
/// nothing. The storyboard refuses stems that could meet this way
/// ([`super::storyboard`]'s output rules).
fn output_stem(output: &str, index: usize, count: usize) -> String {
    if count == 1 {
        output.to_string()
    } else {
        format!("{output}-{}", index + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::output_stem;

    #[test]
    fn output_stems_follow_the_shot_never_the_url() {
        assert_eq!(output_stem("intro", 0, 1), "intro");
        assert_eq!(output_stem("intro", 1, 2), "intro-2");
    }
}
