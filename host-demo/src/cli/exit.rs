//! The exit codes of every subcommand, in one table: `host-demo --help` prints it, the docs
//! copy it, and a test keeps each code. A script reads the code; a person reads the last
//! lines, which say the same in words with the command that picks the work up.

use std::process::ExitCode;

/// How a command ended, as its exit code says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done — every clip downloaded (or, for `--dry-run`, `status` and `resolve`, what
    /// was asked was printed or recorded).
    Done,
    /// 1: the host could not do what it had to (a file it could not write, a journal it
    /// could not open): the message names it. Anything submitted is journaled or printed.
    Error,
    /// 2: refused before anything was sent — every input problem (arguments, the storyboard,
    /// images, URLs, amounts, the output folder, a request the component rejects, a cost
    /// over `--max-cost`, a repeat of a paid request): nothing was billed.
    Refused,
    /// 3: submitted, not finished, resumable: a job given up waiting for, stopped by Ctrl-C,
    /// not yet downloaded, or a submit whose answer was lost; the printed command picks it up
    /// without paying twice.
    Resumable,
    /// 4: a job failed (the provider ended it without a clip) or a submit was refused after
    /// the run began (such as a refused key): nothing to pick up.
    Failed,
    /// 5: a clip was downloaded but is not what was paid for (its length, frame or sound, or
    /// not a readable MP4): kept, reported as "paid for X, received Y" in the output, the
    /// manifest and the contact sheet, and never resubmitted (that would pay twice).
    NotAsPaidFor,
}

impl Exit {
    /// The process's exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Done => 0,
            Exit::Error => 1,
            Exit::Refused => 2,
            Exit::Resumable => 3,
            Exit::Failed => 4,
            Exit::NotAsPaidFor => 5,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// Ctrl-C before anything was submitted, or a second Ctrl-C: the shell's code for an
/// interrupt.
pub const INTERRUPTED: i32 = 130;

/// The table `--help` ends with.
pub const TABLE: &str = "\
Exit codes (every command):
  0    done: every clip downloaded (or what was asked printed or recorded)
  1    error: the host could not do its part (a file, the journal); the message names it
  2    refused before anything was sent: arguments, storyboard, images, URLs, amounts,
       the output folder, a rejected request, a cost over --max-cost; nothing billed
  3    submitted, not finished: resumable with the command printed last
  4    a job failed at the provider, or a submit was refused after the run began
  5    a clip was downloaded but is not what was paid for (length, frame, sound, or
       not a readable MP4): kept and reported, never resubmitted; do not retry on 5,
       its job was billed
  130  Ctrl-C before anything was submitted, or a second Ctrl-C: stopped at once";

/// An input problem found before anything was sent: `main` maps it to [`Exit::Refused`].
/// Carried inside `anyhow::Error`, so every input check can use `?`.
#[derive(Debug)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// `Err(Refusal)` with a message, for `?`.
pub fn refuse<T>(message: impl Into<String>) -> anyhow::Result<T> {
    Err(Refusal(message.into()).into())
}

/// Makes any error an input refusal ([`Exit::Refused`]), keeping its words.
pub trait RefuseInput<T> {
    /// The error, if any, as a refusal of the input named by `what`.
    fn refused(self, what: &str) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> RefuseInput<T> for Result<T, E> {
    fn refused(self, what: &str) -> anyhow::Result<T> {
        self.map_err(|e| {
            let e: anyhow::Error = e.into();
            Refusal(format!("{what}: {e:#}")).into()
        })
    }
}

/// The exit an error from a command means: a refusal of input, or the host's error.
pub fn of_error(error: &anyhow::Error) -> Exit {
    if error.chain().any(|cause| cause.is::<Refusal>()) {
        Exit::Refused
    } else {
        Exit::Error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_code_once() {
        for exit in [
            Exit::Done,
            Exit::Error,
            Exit::Refused,
            Exit::Resumable,
            Exit::Failed,
            Exit::NotAsPaidFor,
        ] {
            let code = format!("\n  {:<4} ", exit.code());
            assert_eq!(TABLE.matches(&code).count(), 1, "{exit:?} in\n{TABLE}");
        }
        assert!(TABLE.contains(&format!("\n  {INTERRUPTED}  ")));
    }

    #[test]
    fn a_refusal_is_found_under_context() {
        let e: anyhow::Error = Refusal("bad".into()).into();
        assert_eq!(of_error(&e.context("reading")), Exit::Refused);
        assert_eq!(of_error(&anyhow::anyhow!("disk full")), Exit::Error);
        let parsed: Result<u32, _> = "x".parse::<u32>();
        assert_eq!(
            of_error(&parsed.refused("--number").unwrap_err()),
            Exit::Refused
        );
    }
}
