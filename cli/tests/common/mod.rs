//! Helpers shared by the CLI tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// Runs `edgepack` on `home`, with the test agent builds.
#[allow(dead_code)] // not every test crate runs the CLI this way
pub fn edgepack(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgepack"))
        .args(args)
        .env("EDGEPACK_HOME", home)
        .env("EDGEPACK_AGENT_DIR", agent_builds(home))
        .output()
        .expect("run edgepack")
}
