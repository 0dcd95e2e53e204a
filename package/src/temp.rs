//! Temporary files and folders owned by a process: named `<prefix><pid>-<uuid>` so that a
//! sweep at start-up removes those of processes that are gone (a worker killed mid-publish or
//! mid-import) and never one a live process is still writing.

use std::path::{Path, PathBuf};

/// A fresh temporary name in `dir` owned by this process.
pub fn owned(dir: &Path, prefix: &str) -> PathBuf {
    dir.join(format!("{prefix}{}-{}", std::process::id(), uuid::Uuid::new_v4()))
}

/// Removes the entries of `dir` named `prefix…` whose owner is not alive (names without an
/// owner, from older builds, included); returns the bytes freed.
pub fn sweep(dir: &Path, prefix: &str) -> u64 {
    let mut freed = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else { continue };
        let owner = rest.split_once('-').and_then(|(pid, _)| pid.parse::<u32>().ok());
        if owner.is_some_and(alive) {
            continue;
        }
        let path = entry.path();
        freed += bytes(&path);
        let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
    }
    freed
}

/// Whether process `pid` is running: a zombie (killed, not yet reaped, e.g. orphaned where
/// nothing reaps orphans) writes nothing any more and counts as gone.
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may hold anything.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X"))
}

/// Bytes of the file, or of the files under the folder, at `path`.
fn bytes(path: &Path) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path).into_iter().flatten().flatten().map(|e| bytes(&e.path())).sum(),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_removes_what_the_dead_and_older_builds_left_and_keeps_the_living() {
        let dir = tempfile::tempdir().unwrap();
        let mine = owned(dir.path(), ".staging-");
        // Above Linux's largest pid (2^22), so never alive.
        let dead = dir.path().join(".staging-4194305-0a");
        let legacy = dir.path().join(".staging-3f2c9a1e-uuid");
        let other = dir.path().join("component");
        for d in [&mine, &dead, &legacy, &other] {
            std::fs::create_dir_all(d.join("sub")).unwrap();
            std::fs::write(d.join("sub/model.onnx"), [0u8; 1000]).unwrap();
            std::fs::write(d.join("recipe.json"), [0u8; 24]).unwrap();
        }
        let file = dir.path().join(".staging-4194305-file");
        std::fs::write(&file, [0u8; 100]).unwrap();
        assert_eq!(sweep(dir.path(), ".staging-"), 2 * 1024 + 100);
        assert!(mine.exists() && other.exists(), "the living and the unrelated stay");
        assert!(!dead.exists() && !legacy.exists() && !file.exists());
    }

    #[test]
    fn a_killed_process_not_yet_reaped_counts_as_gone() {
        let mut child = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        assert!(alive(child.id()));
        child.kill().unwrap();
        // Not waited for: a zombie until reaped.
        let t0 = std::time::Instant::now();
        while alive(child.id()) && t0.elapsed().as_secs() < 10 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!alive(child.id()), "a zombie is not alive");
        assert!(Path::new(&format!("/proc/{}", child.id())).exists(), "still in /proc until reaped");
        child.wait().unwrap();
        assert!(!alive(child.id()));
    }
}
