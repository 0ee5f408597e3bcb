//! Scratch directories for the tests, under cargo's `target/tmp` rather than `/tmp`.
//!
//! Each test process gets `target/tmp/edgesign-tests/<pid>/`. Servers that live for the whole
//! test binary are never dropped, so a process cannot clean up after itself; instead the first
//! scratch directory a process asks for removes those of processes that are gone. Disk use
//! stays at what the running test binaries hold (an S3 origin holds about 65 MB), however many
//! times the suite runs.
#![allow(dead_code, reason = "each test crate uses a different subset")]
#![allow(
    unreachable_pub,
    reason = "a private module of each test crate, used as a library"
)]
#![allow(clippy::unwrap_used, reason = "a broken fixture should fail loudly")]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where every test process keeps its directory.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("edgesign-tests")
}

/// A fresh, empty directory named after `tag`, inside this process's own directory.
pub fn dir(tag: &str) -> PathBuf {
    static MINE: OnceLock<PathBuf> = OnceLock::new();
    static N: AtomicUsize = AtomicUsize::new(0);
    let mine = MINE.get_or_init(|| {
        let root = root();
        sweep(&root);
        let mine = root.join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&mine);
        mine
    });
    let d = mine.join(format!("{tag}-{}", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Removes the directories of test processes that no longer run.
fn sweep(root: &Path) {
    // Without /proc (not Linux) there is no telling a live process from a gone one.
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
