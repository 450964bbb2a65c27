//! Helpers for the workspace's tests (feature `testing`; not part of the library API).

use std::path::Path;

/// A fresh folder under the system's temporary directory, removed with its contents
/// when dropped (also when a test fails). Derefs to its [`Path`].
#[derive(Debug)]
pub struct TmpDir(tempfile::TempDir);

impl TmpDir {
    /// A new folder whose name starts with `prefix`.
    pub fn new(prefix: &str) -> Self {
        TmpDir(
            tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .expect("a temporary folder"),
        )
    }
}

impl std::ops::Deref for TmpDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TmpDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<std::ffi::OsStr> for TmpDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.path().as_os_str()
    }
}
