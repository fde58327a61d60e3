//! Text from the plugin or the provider, made safe to use: a job id is checked before it
//! names a file or reaches the journal, and any such text is made inert before a person
//! sees it on a terminal.
//!
//! Neither the plugin nor the provider behind it is trusted (docs/sandbox.md): a job id may
//! be an absolute path or `../..`, and an error message may carry escape sequences that
//! repaint or retitle the user's terminal.

use std::borrow::Cow;

/// Check a job id that came out of the plugin, with the rule the component itself applies
/// before it puts an id in a poll's URL (`happyhorse_core::wire::job_path`): 1 to 256
/// letters, digits, `.`, `_`, `:` or `-`, and not `.` or `..`. An id that fails it cannot be
/// polled anyway, so refusing it loses nothing. An id that carries a registered secret (the
/// API key, echoed back and copied into it) is refused too: it would name a file, which no
/// redaction reaches. The error is a sentence for a person.
pub fn check_job_id(job_id: &str) -> Result<(), String> {
    happyhorse_core::wire::job_path(job_id)
        .map(|_| ())
        .map_err(|v| shown(&v.message).into_owned())?;
    if happyhorse_sandbox::contains_secret(job_id) {
        return Err("the job id contains the API key".into());
    }
    Ok(())
}

/// A file name stem for a checked job id: its characters are already safe on Unix, and `:`
/// (refused by Windows) becomes `_`. The id must have passed [`check_job_id`]; a leading `.`
/// is prefixed so the file is never hidden.
pub fn job_file_stem(job_id: &str) -> Result<String, String> {
    check_job_id(job_id)?;
    let stem = job_id.replace(':', "_");
    Ok(if stem.starts_with('.') {
        format!("job{stem}")
    } else {
        stem
    })
}

/// Whether a character must not reach a terminal as is: C0 and C1 controls (ESC starts ANSI
/// sequences, CR and BS overwrite what was shown, BEL rings), DEL, and the Unicode
/// bidirectional controls that reorder what is displayed.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` as a person may see it: every control character (see `is_unsafe`) written as a
/// visible `\u{..}` escape, so nothing from outside can drive the terminal. Text with none is
/// returned as is.
pub fn shown(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Like [`shown`], but line breaks and tabs stay as they are: for the CLI's final error
/// message, whose chain may quote a multi-line parser diagnostic (a storyboard's TOML error
/// points at the column with a caret on the next line).
pub fn shown_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            line.split('\t')
                .map(|part| shown(part).into_owned())
                .collect::<Vec<_>>()
                .join("\t")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_that_are_paths_are_refused() {
        for bad in [
            "/etc/passwd",
            "../../escape",
            "a/b",
            "..",
            ".",
            "",
            "job\u{1b}[2J",
            "job 1",
            "C:\\x",
        ] {
            assert!(check_job_id(bad).is_err(), "{bad:?}");
            assert!(job_file_stem(bad).is_err(), "{bad:?}");
        }
        assert!(check_job_id(&"a".repeat(257)).is_err());
        assert_eq!(job_file_stem("job_01:ab-c.d").unwrap(), "job_01_ab-c.d");
        assert_eq!(job_file_stem("...").unwrap(), "job...");
    }

    #[test]
    fn a_job_id_carrying_the_key_names_no_file() {
        // A key made only of job-id characters, as many are: a provider that echoes it, or a
        // plugin that copies it, can hand it back as a job id, which `generate` would then
        // write into the output's file name, a sink no redaction reaches.
        let key = "sk-live-job-shaped-0f1e2d3c";
        happyhorse_sandbox::register_secret(key);
        for id in [key.to_string(), format!("job_{key}"), format!("{key}:1")] {
            assert!(check_job_id(&id).is_err(), "{id}");
            assert!(job_file_stem(&id).is_err(), "{id}");
        }
        assert!(check_job_id("job_sk-live").is_ok());
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(shown("plain text é"), "plain text é");
        assert_eq!(shown("red\u{1b}[31m!"), "red\\u{1b}[31m!");
        assert_eq!(shown("a\rb\u{7}\u{9b}c"), "a\\u{d}b\\u{7}\\u{9b}c");
        assert_eq!(shown("x\u{202e}y"), "x\\u{202e}y");
        assert!(!shown("\u{1b}]0;title\u{7}").contains('\u{1b}'));
        assert_eq!(shown_lines("a\n  ^\tb\u{1b}"), "a\n  ^\tb\\u{1b}");
    }
}
