//! The command line's subcommands that have more than a few lines of their own. Everything a
//! person sees is printed here and in `main.rs`; the library reports, the CLI prints.

// The macros first: the modules below use them.

/// Print a line to stdout, redacted (the key never reaches a terminal): the CLI's `println!`.
/// Once stdout carries `--json` events ([`events::Events`]), to stderr instead: a script
/// reading stdout line by line must meet nothing but events.
macro_rules! say {
    ($($arg:tt)*) => {{
        let line = happyhorse_sandbox::redact(&format!($($arg)*)).into_owned();
        if $crate::cli::events::stdout_reserved() {
            eprintln!("{line}")
        } else {
            println!("{line}")
        }
    }};
}

/// Print a line to stderr, redacted: the CLI's `eprintln!`.
macro_rules! tell {
    ($($arg:tt)*) => {
        eprintln!("{}", happyhorse_sandbox::redact(&format!($($arg)*)))
    };
}

pub(crate) use {say, tell};

pub mod events;
pub mod exit;
pub mod job;
pub mod jobs;
pub mod pipeline;
pub mod progress;
pub mod tee;
