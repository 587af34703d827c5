//! A local folder (or several) as a [`Storage`].

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use switchboard_core::Timestamp;
use tokio::io::AsyncWriteExt;

use crate::{FileInfo, FilesError, Roots, Storage, WriteMode, matches};

/// Files in local folders, confined to [`Roots`].
#[derive(Debug, Clone)]
pub struct LocalStorage {
    roots: Roots,
}

impl LocalStorage {
    /// A storage over `roots`.
    pub fn new(roots: Roots) -> Self {
        Self { roots }
    }

    /// Its roots.
    pub fn roots(&self) -> &Roots {
        &self.roots
    }

    fn info(&self, local: &Path, metadata: &std::fs::Metadata) -> FileInfo {
        let modified_at = metadata
            .modified()
            .ok()
            .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(Timestamp(0), |since| {
                Timestamp(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
            });
        FileInfo {
            name: local
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: self.roots.name_of(local),
            size: metadata.len(),
            modified_at,
        }
    }
}

fn io(path: &str) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            FilesError::NotFound(path.to_owned())
        } else {
            FilesError::Io {
                path: path.to_owned(),
                source,
            }
        }
    }
}

async fn make_parent(local: &Path, path: &str) -> Result<(), FilesError> {
    if let Some(parent) = local.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(io(path))?;
    }
    Ok(())
}

/// A name next to `local` for a file being written, unique to this write.
fn temporary(local: &Path) -> PathBuf {
    let mut random = [0u8; 8];
    // Without randomness the name is still unique per process and file.
    let _ = getrandom::fill(&mut random);
    let name = local
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    local.with_file_name(format!(".{name}.{}.tmp", hex::encode(random)))
}

#[async_trait]
impl Storage for LocalStorage {
    async fn list(&self, dir: &str, pattern: Option<&str>) -> Result<Vec<FileInfo>, FilesError> {
        let local = self.roots.resolve(dir)?;
        let mut entries = tokio::fs::read_dir(&local).await.map_err(io(dir))?;
        let mut files = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(io(dir))? {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Files being written by a storage start with a dot; so do hidden files.
            if name.starts_with('.') || !pattern.is_none_or(|pattern| matches(pattern, &name)) {
                continue;
            }
            let metadata = entry.metadata().await.map_err(io(dir))?;
            if metadata.is_file() {
                files.push(self.info(&entry.path(), &metadata));
            }
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    async fn stat(&self, path: &str) -> Result<Option<FileInfo>, FilesError> {
        let local = self.roots.resolve(path)?;
        match tokio::fs::metadata(&local).await {
            Ok(metadata) if metadata.is_file() => Ok(Some(self.info(&local, &metadata))),
            Ok(_) => Ok(None),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io(path)(error)),
        }
    }

    async fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, FilesError> {
        let local = self.roots.resolve(path)?;
        let size = tokio::fs::metadata(&local).await.map_err(io(path))?.len();
        if size > limit {
            return Err(FilesError::TooLarge {
                path: path.to_owned(),
                size,
                limit,
            });
        }
        tokio::fs::read(&local).await.map_err(io(path))
    }

    async fn reader(&self, path: &str) -> Result<Box<dyn std::io::Read + Send>, FilesError> {
        let local = self.roots.resolve(path)?;
        let file = tokio::fs::File::open(&local).await.map_err(io(path))?;
        Ok(Box::new(std::io::BufReader::new(file.into_std().await)))
    }

    async fn write(&self, path: &str, bytes: Vec<u8>, mode: WriteMode) -> Result<u64, FilesError> {
        let local = self.roots.resolve(path)?;
        make_parent(&local, path).await?;
        match mode {
            WriteMode::Replace => {
                let temporary = temporary(&local);
                let written = async {
                    let mut file = tokio::fs::File::create(&temporary).await?;
                    file.write_all(&bytes).await?;
                    file.sync_all().await?;
                    tokio::fs::rename(&temporary, &local).await
                }
                .await;
                if let Err(error) = written {
                    let _ = tokio::fs::remove_file(&temporary).await;
                    return Err(io(path)(error));
                }
                Ok(bytes.len() as u64)
            }
            WriteMode::Append => {
                let mut file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&local)
                    .await
                    .map_err(io(path))?;
                file.write_all(&bytes).await.map_err(io(path))?;
                file.sync_all().await.map_err(io(path))?;
                Ok(file.metadata().await.map_err(io(path))?.len())
            }
        }
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), FilesError> {
        let source = self.roots.resolve(from)?;
        let target = self.roots.resolve(to)?;
        make_parent(&target, to).await?;
        tokio::fs::rename(&source, &target).await.map_err(io(from))
    }

    async fn delete(&self, path: &str) -> Result<bool, FilesError> {
        let local = self.roots.resolve(path)?;
        match tokio::fs::remove_file(&local).await {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(io(path)(error)),
        }
    }
}
