//! The folders file paths are confined to.

use std::path::{Component, Path, PathBuf};

use crate::FilesError;

/// The folders a local storage may touch. Each is absolute and resolved (no symbolic
/// links), made when missing.
#[derive(Debug, Clone)]
pub struct Roots {
    roots: Vec<PathBuf>,
}

impl Roots {
    /// Roots at `folders` (at least one), each made when missing.
    pub fn new(folders: &[PathBuf]) -> Result<Self, FilesError> {
        let mut roots = Vec::new();
        for folder in folders {
            let io = |source| FilesError::Io {
                path: folder.display().to_string(),
                source,
            };
            std::fs::create_dir_all(folder).map_err(io)?;
            roots.push(folder.canonicalize().map_err(io)?);
        }
        if roots.is_empty() {
            return Err(FilesError::Io {
                path: String::new(),
                source: std::io::Error::other("no file root is configured"),
            });
        }
        Ok(Self { roots })
    }

    /// The roots.
    pub fn folders(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The local path of `path`: relative ones are taken from the first root, absolute
    /// ones must lie in a root. `.` and `..` are resolved first, and the part of the path
    /// that exists is resolved through its symbolic links, so neither can lead out.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, FilesError> {
        let escapes = || FilesError::Escapes {
            path: path.to_owned(),
            roots: self
                .roots
                .iter()
                .map(|root| root.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        };
        if path.is_empty() || path.contains('\0') {
            return Err(escapes());
        }
        let given = Path::new(path);
        let joined = if given.is_absolute() {
            given.to_owned()
        } else {
            self.roots[0].join(given)
        };
        let mut normal = PathBuf::new();
        for component in joined.components() {
            match component {
                Component::ParentDir => {
                    if !normal.pop() {
                        return Err(escapes());
                    }
                }
                Component::CurDir => {}
                other => normal.push(other),
            }
        }
        let root = self
            .roots
            .iter()
            .find(|root| normal.starts_with(root))
            .ok_or_else(escapes)?;
        // The longest part that exists, through its links, must stay in the root.
        let mut existing = normal.as_path();
        let resolved = loop {
            match existing.canonicalize() {
                Ok(resolved) => break resolved,
                Err(_) => match existing.parent() {
                    Some(parent) => existing = parent,
                    None => return Err(escapes()),
                },
            }
        };
        if !resolved.starts_with(root) {
            return Err(escapes());
        }
        Ok(normal)
    }

    /// `local` as the storage names it: relative to the first root when inside it, else
    /// absolute.
    pub fn name_of(&self, local: &Path) -> String {
        match local.strip_prefix(&self.roots[0]) {
            Ok(relative) => relative
                .components()
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/"),
            Err(_) => local.display().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn paths_stay_inside_their_roots() {
        let folder = tempfile::tempdir().unwrap();
        let first = folder.path().join("exchange");
        let second = folder.path().join("archive");
        let roots = Roots::new(&[first.clone(), second.clone()]).unwrap();
        let first = first.canonicalize().unwrap();
        let second = second.canonicalize().unwrap();
        assert_eq!(
            roots.resolve("inbox/a.csv").unwrap(),
            first.join("inbox/a.csv")
        );
        assert_eq!(
            roots.resolve("inbox/../outbox/./b.csv").unwrap(),
            first.join("outbox/b.csv")
        );
        let absolute = second.join("2026/c.csv");
        assert_eq!(roots.resolve(absolute.to_str().unwrap()).unwrap(), absolute);
        for escaping in ["../secret", "inbox/../../secret", "/etc/passwd", ""] {
            assert!(
                matches!(roots.resolve(escaping), Err(FilesError::Escapes { .. })),
                "{escaping}"
            );
        }
        assert_eq!(roots.name_of(&first.join("inbox/a.csv")), "inbox/a.csv");
    }

    #[cfg(unix)]
    #[test]
    fn a_link_out_of_the_root_is_refused() {
        let folder = tempfile::tempdir().unwrap();
        let root = folder.path().join("root");
        let outside = folder.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let roots = Roots::new(std::slice::from_ref(&root)).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        assert!(matches!(
            roots.resolve("link/file.csv"),
            Err(FilesError::Escapes { .. })
        ));
    }
}
