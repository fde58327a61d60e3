//! The command line's subcommands that have more than a few lines of their own. Everything a
//! person sees is printed here and in `main.rs`; the library reports, the CLI prints.

// The macros first: the modules below use them.

/// Print a line to stdout, redacted (the key never reaches a terminal): the CLI's `println!`.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", happyhorse_sandbox::redact(&format!($($arg)*)))
    };
}

/// Print a line to stderr, redacted: the CLI's `eprintln!`.
macro_rules! tell {
    ($($arg:tt)*) => {
        eprintln!("{}", happyhorse_sandbox::redact(&format!($($arg)*)))
    };
}

pub(crate) use {say, tell};

pub mod exit;
pub mod job;
pub mod pipeline;
pub mod progress;
