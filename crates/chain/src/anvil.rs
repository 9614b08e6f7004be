//! Finding and starting the project-local Anvil.
//!
//! `scripts/setup.sh` links the native Anvil binary from the npm package to
//! `tools/bin/anvil`. We spawn that binary directly: the `node_modules/.bin`
//! wrapper is a Node script whose death leaves the real Anvil running.

use std::path::{Path, PathBuf};

use alloy::node_bindings::{Anvil, AnvilInstance};

use crate::{ChainError, ChainResult};

/// Environment variable that overrides where the Anvil binary is.
pub const ANVIL_ENV: &str = "LUMEN_ANVIL";

/// Finds the Anvil binary: `$LUMEN_ANVIL`, then `tools/bin/anvil` in this
/// checkout (found from the current directory or this crate's source
/// directory upwards), then `anvil` on `PATH`.
pub fn locate() -> ChainResult<PathBuf> {
    if let Some(path) = std::env::var_os(ANVIL_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(ChainError::Anvil(format!("{ANVIL_ENV}={} is not a file", path.display())))
        };
    }
    let starts = [std::env::current_dir().ok(), Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")))];
    for start in starts.into_iter().flatten() {
        if let Some(found) = find_upwards(&start, Path::new("tools/bin/anvil")) {
            return Ok(found);
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("anvil");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(ChainError::Anvil("anvil not found: run scripts/setup.sh or set LUMEN_ANVIL".to_owned()))
}

fn find_upwards(start: &Path, relative: &Path) -> Option<PathBuf> {
    start.ancestors().map(|dir| dir.join(relative)).find(|p| p.is_file())
}

/// Starts a fresh Anvil on a free loopback port with the default dev
/// accounts and the Prague hardfork. The process is killed when the returned
/// instance is dropped.
pub fn spawn() -> ChainResult<AnvilInstance> {
    spawn_with(|anvil| anvil)
}

/// Like [`spawn`], letting the caller adjust the builder (block time,
/// extra arguments) first.
pub fn spawn_with(configure: impl FnOnce(Anvil) -> Anvil) -> ChainResult<AnvilInstance> {
    let builder = Anvil::at(locate()?).port(0u16).prague();
    configure(builder).try_spawn().map_err(|e| ChainError::Anvil(e.to_string()))
}
