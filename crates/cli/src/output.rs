//! What the CLI prints for people and scripts (stdout). Logs go to stderr.

#![allow(clippy::disallowed_macros)] // this module is the CLI's stdout

/// Prints a line to stdout.
pub fn line(text: impl std::fmt::Display) {
    println!("{text}");
}

/// Prints pretty JSON to stdout.
pub fn json<T: serde::Serialize>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).expect("serializable values serialize"));
}

/// Prints text to stdout as it is (no newline added).
pub fn raw(text: &str) {
    print!("{text}");
}
