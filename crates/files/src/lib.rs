//! Files for flows: where they live and how they read.
//!
//! - [`Storage`] is the one interface of a place that holds files: list, stat, read,
//!   write (replace atomically, or append), move and delete, by `/`-separated path. The
//!   local implementation, [`LocalStorage`], keeps every path inside its [`Roots`]: a
//!   relative path is taken from the first root, an absolute one must lie inside a
//!   root, and `..` or a symbolic link that leads out is refused. S3 and SFTP storages
//!   implement the same trait.
//! - [`format`] reads and writes the formats flows exchange: CSV (header mapping,
//!   delimiter, quoting), JSON, NDJSON, XML (to JSON, attributes as `@name`) and text.
//!   A malformed file's error names its line and column.

pub mod format;
mod local;
mod roots;

use async_trait::async_trait;
use serde_json::{Value, json};
use switchboard_core::Timestamp;

pub use format::{Format, FormatError};
pub use local::LocalStorage;
pub use roots::Roots;

/// A file operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The path leads outside every root.
    #[error("`{path}` is outside the file roots ({roots})")]
    Escapes {
        /// The path as given.
        path: String,
        /// The roots, for the message.
        roots: String,
    },
    /// The path names nothing.
    #[error("`{0}` does not exist")]
    NotFound(String),
    /// The file is larger than what may be read at once.
    #[error("`{path}` is {size} bytes, more than the {limit} bytes a read takes")]
    TooLarge {
        /// The path.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The file system failed.
    #[error("`{path}`: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// What a listing or a stat tells of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Its name.
    pub name: String,
    /// Its path, as the storage names it.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub modified_at: Timestamp,
}

impl FileInfo {
    /// The file as flows see it: `{name, path, size, modified_at}`.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "path": self.path,
            "size": self.size,
            "modified_at": self.modified_at.to_rfc3339(),
        })
    }
}

/// How a write treats a file that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Replaces it, atomically: readers see the old file or the whole new one.
    Replace,
    /// Adds to its end (creating it when missing).
    Append,
}

/// A place that holds files.
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// The files (not folders) directly in folder `dir` whose name matches `pattern`
    /// (`*` any run of characters, `?` one), by name.
    async fn list(&self, dir: &str, pattern: Option<&str>) -> Result<Vec<FileInfo>, FilesError>;

    /// The file at `path`, if there is one.
    async fn stat(&self, path: &str) -> Result<Option<FileInfo>, FilesError>;

    /// The whole file, refused when larger than `limit` bytes.
    async fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, FilesError>;

    /// The file opened for reading as it is needed, on a blocking thread (a file of
    /// any size, in bounded memory).
    async fn reader(&self, path: &str) -> Result<Box<dyn std::io::Read + Send>, FilesError>;

    /// Writes `bytes` to `path` (its folders made as needed); answers the file's size.
    async fn write(&self, path: &str, bytes: Vec<u8>, mode: WriteMode) -> Result<u64, FilesError>;

    /// Moves a file (replacing what is at `to`); its folders are made as needed.
    async fn rename(&self, from: &str, to: &str) -> Result<(), FilesError>;

    /// Deletes a file; `false` when there was none.
    async fn delete(&self, path: &str) -> Result<bool, FilesError>;
}

/// Whether `name` matches `pattern`: `*` stands for any run of characters, `?` for
/// one, anything else for itself.
pub fn matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    // The classic two-pointer match with backtracking to the last `*`.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(c) if *c == '?' || *c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns_match_names() {
        assert!(matches("*.csv", "orders-2026.csv"));
        assert!(!matches("*.csv", "orders.csv.part"));
        assert!(matches("orders-??.csv", "orders-01.csv"));
        assert!(!matches("orders-??.csv", "orders-1.csv"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
    }
}
