//! Helpers shared by the CLI tests.

use std::path::{Path, PathBuf};

/// Agent builds for packaging jobs (`EDGEPACK_AGENT_DIR`): the jobs publish them as the agent
/// component's artifact. Their bytes are a marker, not a program: the agent crate's tests
/// publish and run the real binary. They lie beside `home` (`<home>.agent-builds`), so `home`
/// must be a folder inside a temporary folder, not the temporary folder itself.
pub fn agent_builds(home: &Path) -> PathBuf {
    let builds = home.with_extension("agent-builds");
    for arch in ["x86_64", "aarch64"] {
        std::fs::create_dir_all(builds.join(arch)).expect("agent builds folder");
        std::fs::write(builds.join(arch).join("edgepack-agent"), format!("edgepack-agent for {arch} (test marker)"))
            .expect("agent build");
    }
    builds
}
