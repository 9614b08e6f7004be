//! The built-in content-addressed blob store: files named by their blake3
//! hash under `<dir>/<first two hex digits>/<hash>`.

use std::path::{Path, PathBuf};

use lumen_protocol::{ContentHash, content_hash};

use crate::{StoreError, StoreResult};

/// Blobs on the local disk.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    /// Opens (creating) a blob folder.
    pub async fn open(dir: &Path) -> StoreResult<Self> {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| StoreError::Io { path: dir.to_owned(), source })?;
        Ok(Self { dir: dir.to_owned() })
    }

    /// Where a blob lives (whether or not it exists).
    pub fn path(&self, hash: &ContentHash) -> PathBuf {
        let hex = hash.to_hex();
        self.dir.join(&hex[..2]).join(hex)
    }

    /// Whether the store holds this blob.
    pub async fn contains(&self, hash: &ContentHash) -> bool {
        tokio::fs::try_exists(self.path(hash)).await.unwrap_or(false)
    }

    /// The size of a stored blob.
    pub async fn size(&self, hash: &ContentHash) -> Option<u64> {
        tokio::fs::metadata(self.path(hash)).await.ok().map(|m| m.len())
    }

    /// Stores bytes under their hash. Bytes already present are not written
    /// again; a write goes to a temporary file first and is renamed into
    /// place, so readers never see half a blob.
    pub async fn put(&self, bytes: &[u8]) -> StoreResult<ContentHash> {
        let hash = content_hash(bytes);
        let path = self.path(&hash);
        if self.contains(&hash).await {
            return Ok(hash);
        }
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        let parent = path.parent().expect("blob paths have a parent");
        tokio::fs::create_dir_all(parent).await.map_err(io(parent))?;
        let tmp = parent.join(format!(".{}.{}.tmp", hash.to_hex(), std::process::id()));
        tokio::fs::write(&tmp, bytes).await.map_err(io(&tmp))?;
        tokio::fs::rename(&tmp, &path).await.map_err(io(&path))?;
        Ok(hash)
    }

    /// Reads a blob, checking it still matches its hash.
    pub async fn get(&self, hash: &ContentHash) -> StoreResult<Option<Vec<u8>>> {
        let path = self.path(hash);
        match tokio::fs::read(&path).await {
            Ok(bytes) => {
                if content_hash(&bytes) != *hash {
                    return Err(StoreError::CorruptBlob { hash: *hash });
                }
                Ok(Some(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_and_detect_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).await.unwrap();
        let hash = store.put(b"frame bytes").await.unwrap();
        assert_eq!(hash, content_hash(b"frame bytes"));
        assert_eq!(store.put(b"frame bytes").await.unwrap(), hash);
        assert_eq!(store.get(&hash).await.unwrap().unwrap(), b"frame bytes");
        assert!(store.get(&content_hash(b"other")).await.unwrap().is_none());

        std::fs::write(store.path(&hash), b"tampered").unwrap();
        assert!(matches!(store.get(&hash).await, Err(StoreError::CorruptBlob { .. })));
    }
}
