//! The built-in content-addressed blob store: files named by their blake3
//! hash under `<dir>/<first two hex digits>/<hash>`.
//!
//! Large content never has to be in memory whole: [`BlobStore::writer`]
//! streams into a temporary file under `<dir>/.incoming` (the same file
//! system, so committing is a rename) and hashes while writing;
//! [`BlobStore::reader`] streams a blob out and checks its hash at the end.

use std::{
    io,
    path::{Path, PathBuf},
    pin::Pin,
    task::{Context, Poll},
};

use lumen_protocol::{ContentHash, ContentHasher, content_hash};
use tokio::io::{AsyncRead, AsyncWriteExt, BufWriter, ReadBuf};

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

    /// A temporary file beside the blobs (in `.incoming`, on the same
    /// disk), removed when dropped: for large answers built on disk, such
    /// as a job's frames archive.
    pub async fn scratch_file(&self) -> StoreResult<tempfile::NamedTempFile> {
        let incoming = self.dir.join(".incoming");
        tokio::fs::create_dir_all(&incoming)
            .await
            .map_err(|source| StoreError::Io { path: incoming.clone(), source })?;
        tempfile::Builder::new()
            .prefix("scratch-")
            .tempfile_in(&incoming)
            .map_err(|source| StoreError::Io { path: incoming, source })
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

    /// Starts writing a blob of unknown hash: the bytes go to a temporary
    /// file that is removed if the writer (or the [`PendingBlob`] it
    /// finishes into) is dropped without [`PendingBlob::commit`].
    pub async fn writer(&self) -> StoreResult<BlobWriter> {
        let incoming = self.dir.join(".incoming");
        tokio::fs::create_dir_all(&incoming)
            .await
            .map_err(|source| StoreError::Io { path: incoming.clone(), source })?;
        // The `.blend` suffix lets Blender read an upload in place.
        let file = tempfile::Builder::new()
            .prefix("upload-")
            .suffix(".blend")
            .tempfile_in(&incoming)
            .map_err(|source| StoreError::Io { path: incoming.clone(), source })?;
        let (file, path) = file.into_parts();
        Ok(BlobWriter {
            file: BufWriter::with_capacity(WRITE_BUFFER, tokio::fs::File::from_std(file)),
            path,
            hasher: ContentHasher::new(),
            size: 0,
            store: self.clone(),
        })
    }

    /// Opens a blob for streaming; the reader fails at its end if the bytes
    /// no longer match the hash.
    pub async fn reader(&self, hash: &ContentHash) -> StoreResult<Option<BlobReader>> {
        let path = self.path(hash);
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let size = file.metadata().await.map_err(|source| StoreError::Io { path, source })?.len();
        Ok(Some(BlobReader { file, size, read: 0, expected: *hash, hasher: ContentHasher::new() }))
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

/// How much of an upload is gathered before each write to disk.
const WRITE_BUFFER: usize = 256 * 1024;

/// A blob being written ([`BlobStore::writer`]).
#[derive(Debug)]
pub struct BlobWriter {
    file: BufWriter<tokio::fs::File>,
    path: tempfile::TempPath,
    hasher: ContentHasher,
    size: u64,
    store: BlobStore,
}

impl BlobWriter {
    /// Appends bytes.
    pub async fn write(&mut self, bytes: &[u8]) -> StoreResult<()> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        self.file
            .write_all(bytes)
            .await
            .map_err(|source| StoreError::Io { path: self.path.to_path_buf(), source })
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flushes the bytes to disk and names them by their hash; nothing is
    /// in the store until [`PendingBlob::commit`].
    pub async fn finish(mut self) -> StoreResult<PendingBlob> {
        let io = |source| StoreError::Io { path: self.path.to_path_buf(), source };
        self.file.flush().await.map_err(io)?;
        self.file.get_mut().sync_data().await.map_err(io)?;
        Ok(PendingBlob { path: self.path, hash: self.hasher.finalize(), size: self.size, store: self.store })
    }
}

/// Bytes written and hashed, not yet in the store: a file to inspect
/// before deciding to keep it. Dropped, the file is removed.
#[derive(Debug)]
pub struct PendingBlob {
    path: tempfile::TempPath,
    hash: ContentHash,
    size: u64,
    store: BlobStore,
}

impl PendingBlob {
    /// The hash of the bytes.
    pub fn hash(&self) -> ContentHash {
        self.hash
    }

    /// Their size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The temporary file holding them (read-only use: inspection).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the file into the store under its hash (atomically: readers
    /// never see half a blob). Content already stored is kept as it is.
    pub async fn commit(self) -> StoreResult<ContentHash> {
        let hash = self.hash;
        if self.store.contains(&hash).await {
            return Ok(hash);
        }
        let path = self.store.path(&hash);
        let parent = path.parent().expect("blob paths have a parent");
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|source| StoreError::Io { path: parent.to_owned(), source })?;
        let tmp = self.path;
        tokio::task::spawn_blocking(move || {
            // Readable like any other blob (the temporary file was private).
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
                .and_then(|()| tmp.persist(&path).map_err(|e| e.error))
                .map_err(|source| StoreError::Io { path, source })
        })
        .await
        .map_err(|e| StoreError::Io { path: self.store.dir.clone(), source: io::Error::other(e) })??;
        Ok(hash)
    }
}

/// A stored blob, streamed ([`BlobStore::reader`]). The read that would
/// complete it fails with [`io::ErrorKind::InvalidData`] instead if the
/// bytes do not match the hash, so a corrupt blob is never delivered whole.
#[derive(Debug)]
pub struct BlobReader {
    file: tokio::fs::File,
    size: u64,
    read: u64,
    expected: ContentHash,
    hasher: ContentHasher,
}

impl BlobReader {
    /// The blob's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn corrupt(&self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, format!("blob {} is corrupt on disk", self.expected))
    }
}

impl AsyncRead for BlobReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        if let Err(err) = std::task::ready!(Pin::new(&mut this.file).poll_read(cx, buf)) {
            return Poll::Ready(Err(err));
        }
        let piece = &buf.filled()[before..];
        let at_end = piece.is_empty() && buf.remaining() > 0;
        this.hasher.update(piece);
        this.read += piece.len() as u64;
        // Checked before the last piece is handed out (the reader knows the
        // size), and again at the end of a file that changed size.
        let completes = !piece.is_empty() && this.read == this.size;
        if (completes || at_end) && (this.read != this.size || this.hasher.finalize() != this.expected) {
            buf.set_filled(before);
            return Poll::Ready(Err(this.corrupt()));
        }
        Poll::Ready(Ok(()))
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

    #[tokio::test]
    async fn streamed_blobs_are_hashed_committed_and_checked_on_the_way_out() {
        use tokio::io::AsyncReadExt;
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).await.unwrap();
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut writer = store.writer().await.unwrap();
        for piece in content.chunks(65_537) {
            writer.write(piece).await.unwrap();
        }
        let pending = writer.finish().await.unwrap();
        assert_eq!((pending.hash(), pending.size()), (content_hash(&content), content.len() as u64));
        assert_eq!(std::fs::read(pending.path()).unwrap(), content, "readable before it is committed");
        let hash = pending.commit().await.unwrap();
        assert_eq!(store.get(&hash).await.unwrap().unwrap(), content);

        let mut reader = store.reader(&hash).await.unwrap().unwrap();
        assert_eq!(reader.size(), content.len() as u64);
        let mut read = Vec::new();
        reader.read_to_end(&mut read).await.unwrap();
        assert_eq!(read, content);
        assert!(store.reader(&content_hash(b"absent")).await.unwrap().is_none());

        let mut tampered = content.clone();
        tampered[1_000_000] ^= 1;
        std::fs::write(store.path(&hash), &tampered).unwrap();
        let mut reader = store.reader(&hash).await.unwrap().unwrap();
        let mut delivered = Vec::new();
        let err = reader.read_to_end(&mut delivered).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(delivered.len() < content.len(), "the corrupt blob is not delivered whole");
    }

    #[tokio::test]
    async fn an_abandoned_write_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).await.unwrap();
        let incoming = dir.path().join(".incoming");
        let mut writer = store.writer().await.unwrap();
        writer.write(b"half an upload").await.unwrap();
        assert_eq!(std::fs::read_dir(&incoming).unwrap().count(), 1);
        drop(writer);
        assert_eq!(std::fs::read_dir(&incoming).unwrap().count(), 0);
        let mut writer = store.writer().await.unwrap();
        writer.write(b"inspected and refused").await.unwrap();
        drop(writer.finish().await.unwrap());
        assert_eq!(std::fs::read_dir(&incoming).unwrap().count(), 0);
    }
}
