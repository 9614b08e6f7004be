//! A new migration file must rebuild the crate: `migrate!` embeds them.

#[allow(clippy::disallowed_macros)] // build scripts talk to cargo through stdout
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
