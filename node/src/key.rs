//! The node's key file: a hex secp256k1 private key, readable by its owner
//! only (mode 0600), like the operator guide's `private_key.pem`.

use std::{
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

use alloy::signers::local::PrivateKeySigner;

use crate::NodeError;

/// Loads the key at `path`, creating a fresh one if the file does not exist.
pub fn load_or_create(path: &Path) -> Result<PrivateKeySigner, NodeError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path).map_err(|e| NodeError::key(path, &e))?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(NodeError::Key {
                    path: path.to_owned(),
                    reason: format!("permissions {:o} let others read the key; chmod 600 it", mode & 0o777),
                });
            }
            text.trim().parse().map_err(|e| NodeError::Key { path: path.to_owned(), reason: format!("{e}") })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = PrivateKeySigner::random();
            write(path, &key)?;
            tracing::info!(target: "node::key", path = %path.display(), node = %key.address(), "generated a new node key");
            Ok(key)
        }
        Err(e) => Err(NodeError::key(path, &e)),
    }
}

/// Writes a key file with mode 0600, refusing to overwrite one.
pub fn write(path: &Path, key: &PrivateKeySigner) -> Result<(), NodeError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| NodeError::key(path, &e))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| NodeError::key(path, &e))?;
    writeln!(file, "{}", alloy::hex::encode_prefixed(key.to_bytes())).map_err(|e| NodeError::key(path, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_loads_the_same_key_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node/private_key");
        let first = load_or_create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load_or_create(&path).unwrap().address(), first.address());
        assert!(write(&path, &first).is_err(), "an existing key is never overwritten");
    }

    #[test]
    fn refuses_world_readable_or_garbage_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_or_create(&path).unwrap_err().to_string().contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "not a key").unwrap();
        assert!(load_or_create(&path).is_err());
    }
}
