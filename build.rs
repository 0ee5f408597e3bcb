//! Records the commit a binary is built from (`edgesign --version`, `edgesign_build_info`):
//! `EDGESIGN_COMMIT` when set (a container build without `.git`), else `git rev-parse`,
//! else "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=EDGESIGN_COMMIT");
    let commit = std::env::var("EDGESIGN_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    // Build again when HEAD moves: HEAD itself, the branches (a directory: cargo looks at
    // every file in it, so a branch's first loose ref counts too), and packed refs. Only
    // paths that exist: cargo counts a missing one as changed, and would then build the
    // crate again on every command (a repository whose refs are all loose has no
    // `packed-refs`; one whose refs are all packed has no file per branch).
    // `--git-path` finds each where git keeps it: in a linked worktree, HEAD is the
    // worktree's own and the branches are the main repository's.
    for name in ["HEAD", "refs/heads", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", name])
            && std::path::Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rustc-env=EDGESIGN_COMMIT={commit}");
}
