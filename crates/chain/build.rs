//! Rebuild the bindings when a committed artifact changes.

#[allow(clippy::disallowed_macros)] // build scripts talk to cargo through stdout
fn main() {
    println!("cargo:rerun-if-changed=artifacts");
}
