//! The inventory of boards (`boards.toml`): where each board is, how to reach it, and the
//! target it claims to be, in the packaging API's terms.
//!
//! ```toml
//! [defaults]                      # optional; every board field below except name/host/target
//! user = "ubuntu"
//! key = "~/.ssh/edgepack_hil"     # relative paths are relative to the inventory file
//! step_timeout_secs = 900
//!
//! [[board]]
//! name = "xavier-01"
//! host = "10.0.4.21"
//! target_device = "jetson_xavier"
//!
//! [[board]]
//! name = "rk3588-02"
//! host = "10.0.4.22"
//! port = 2222
//! target_platform = { os = "LINUX", arch = "ARM64" }
//! compiler_options = '{"mcpu": "cortex-a76"}'
//! prefix = ""                     # a command the board's binaries run under (an emulator)
//! workdir = "/tmp/edgepack-hil"
//! ssh_options = ["ProxyJump=bastion"]
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kernels::Target;
use serde::Deserialize;

/// What is wrong with an inventory.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The file could not be read.
    #[error("inventory {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML of the expected shape.
    #[error("inventory: {0}")]
    Syntax(String),
    /// A board's entry is inconsistent.
    #[error("inventory: board `{board}`: {problem}")]
    Board {
        /// The board's name.
        board: String,
        /// What is wrong.
        problem: String,
    },
}

/// The fields of a `[[board]]` entry; `[defaults]` takes the same ones but for the name, the
/// host and the target.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Fields {
    name: Option<String>,
    host: Option<String>,
    target_device: Option<String>,
    target_platform: Option<Platform>,
    compiler_options: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    key: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    prefix: Option<String>,
    workdir: Option<String>,
    connect_timeout_secs: Option<u64>,
    step_timeout_secs: Option<u64>,
    ssh_options: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Platform {
    os: String,
    arch: String,
    accelerator: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: Fields,
    #[serde(default, rename = "board")]
    boards: Vec<Fields>,
}

/// One board, resolved: every default applied, its target parsed.
#[derive(Debug, Clone)]
pub struct Board {
    /// Unique name (letters, digits, `.`, `_`, `-`): report and folder names.
    pub name: String,
    /// Host name or address.
    pub host: String,
    /// SSH port (22).
    pub port: u16,
    /// Login (the local user's name when absent: OpenSSH's default).
    pub user: Option<String>,
    /// Private key file (absent: OpenSSH's own choice, agent included).
    pub key: Option<PathBuf>,
    /// Known-hosts file (absent: the user's; new hosts are accepted once, changed keys refused).
    pub known_hosts: Option<PathBuf>,
    /// The target the board claims to be.
    pub target: Target,
    /// Command prefix the board's binaries run under (an emulator such as `qemu-aarch64`).
    pub prefix: String,
    /// Absolute folder on the board for binaries, data and reports.
    pub workdir: String,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on each step.
    pub step_timeout: Duration,
    /// Extra `-o` options for ssh (`ProxyJump=…`).
    pub ssh_options: Vec<String>,
}

/// Reads and checks an inventory file.
pub fn read_inventory(path: &Path) -> Result<Vec<Board>, InventoryError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| InventoryError::Read { path: path.to_owned(), source })?;
    parse_inventory(&text, path.parent().unwrap_or(Path::new(".")))
}

/// Parses an inventory; relative key and known-hosts paths are taken from `base`.
pub fn parse_inventory(text: &str, base: &Path) -> Result<Vec<Board>, InventoryError> {
    let file: File = toml::from_str(text).map_err(|e| InventoryError::Syntax(e.to_string()))?;
    if file.boards.is_empty() {
        return Err(InventoryError::Syntax("no [[board]] entries".into()));
    }
    let d = &file.defaults;
    if d.name.is_some() || d.host.is_some() || d.target_device.is_some() || d.target_platform.is_some() {
        return Err(InventoryError::Syntax("[defaults] cannot give a name, a host or a target".into()));
    }
    let mut names = HashSet::new();
    file.boards.into_iter().enumerate().map(|(i, e)| resolve(i, e, d, base, &mut names)).collect()
}

fn resolve(
    index: usize,
    e: Fields,
    d: &Fields,
    base: &Path,
    names: &mut HashSet<String>,
) -> Result<Board, InventoryError> {
    let name = e.name.clone().unwrap_or_else(|| format!("#{}", index + 1));
    let problem = |p: String| InventoryError::Board { board: name.clone(), problem: p };
    let name_ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !name_ok {
        return Err(problem("a name (required) is letters, digits, `.`, `_` and `-`".into()));
    }
    if !names.insert(name.clone()) {
        return Err(problem("the name is used twice".into()));
    }
    let host = e.host.clone().unwrap_or_default();
    if host.is_empty() || host.starts_with('-') || host.contains(char::is_whitespace) {
        return Err(problem(format!("host `{host}` is not a host name")));
    }
    let target = match (&e.target_device, &e.target_platform) {
        (Some(device), None) if e.compiler_options.is_none() => Target::device(device),
        (Some(_), None) => return Err(problem("compiler_options cannot be given with target_device".into())),
        (None, Some(p)) => Target::platform(&p.os, &p.arch, p.accelerator.as_deref(), e.compiler_options.as_deref()),
        _ => return Err(problem("give exactly one of target_device and target_platform".into())),
    }
    .map_err(|err| problem(err.to_string()))?;
    let path = |p: Option<PathBuf>, dp: &Option<PathBuf>| or(p, dp).map(|p| expand(&p, base));
    let workdir = or(e.workdir, &d.workdir).unwrap_or_else(|| "/tmp/edgepack-hil".into());
    let workdir_ok = workdir.starts_with('/') && !workdir.contains(['\'', '"', '\\', '$', '`', ' ', '\n']);
    if !workdir_ok {
        return Err(problem(format!("workdir `{workdir}` must be an absolute path without quotes, `$` or spaces")));
    }
    let secs = |v: Option<u64>, dv: Option<u64>, default: u64| Duration::from_secs(v.or(dv).unwrap_or(default).max(1));
    Ok(Board {
        name,
        host,
        port: e.port.or(d.port).unwrap_or(22),
        user: or(e.user, &d.user),
        key: path(e.key, &d.key),
        known_hosts: path(e.known_hosts, &d.known_hosts),
        target,
        prefix: or(e.prefix, &d.prefix).unwrap_or_default(),
        workdir,
        connect_timeout: secs(e.connect_timeout_secs, d.connect_timeout_secs, 10),
        step_timeout: secs(e.step_timeout_secs, d.step_timeout_secs, 900),
        ssh_options: or(e.ssh_options, &d.ssh_options).unwrap_or_default(),
    })
}

/// A board's own value, else the default's.
fn or<T: Clone>(own: Option<T>, default: &Option<T>) -> Option<T> {
    own.or_else(|| default.clone())
}

/// `~/x` from $HOME; a relative path from `base`.
fn expand(p: &Path, base: &Path) -> PathBuf {
    match (p.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => Path::new(&home).join(rest),
        _ if p.is_relative() => base.join(p),
        _ => p.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernels::{Accelerator, Arch};

    const TWO: &str = r#"
[defaults]
user = "ci"
key = "keys/id"
step_timeout_secs = 30

[[board]]
name = "xavier-01"
host = "10.0.4.21"
target_device = "jetson_xavier"

[[board]]
name = "pi"
host = "localhost"
port = 2222
key = "/abs/key"
target_platform = { os = "LINUX", arch = "ARM64" }
compiler_options = '{"mcpu": "cortex-a72"}'
prefix = "qemu-aarch64 -cpu cortex-a72"
"#;

    #[test]
    fn boards_take_the_defaults_and_their_targets() {
        let b = parse_inventory(TWO, Path::new("/inv")).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].port, b[0].user.as_deref()), (22, Some("ci")));
        assert_eq!(b[0].key.as_deref(), Some(Path::new("/inv/keys/id")));
        assert!(matches!(b[0].target.accelerator, Accelerator::Nvidia(ref o) if o.sm == 72));
        assert_eq!(b[0].step_timeout, Duration::from_secs(30));
        assert_eq!(b[0].workdir, "/tmp/edgepack-hil");
        assert_eq!((b[1].port, b[1].target.arch, b[1].target.mcpu.as_str()), (2222, Arch::Arm64, "cortex-a72"));
        assert_eq!(b[1].key.as_deref(), Some(Path::new("/abs/key")));
        assert_eq!(b[1].prefix, "qemu-aarch64 -cpu cortex-a72");
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            ("[[board]]\nname = \"a\"\nhost = \"h\"\n", "exactly one of target_device and target_platform"),
            ("[[board]]\nname = \"a b\"\nhost = \"h\"\ntarget_device = \"jetson_xavier\"\n", "a name (required) is"),
            ("[[board]]\nname = \"a\"\nhost = \"h\"\ntarget_device = \"jetson_nano\"\n", "unknown TargetDevice"),
            (
                "[[board]]\nname = \"a\"\nhost = \"h\"\ntarget_platform = { os = \"LINUX\", arch = \"MIPS\" }\n",
                "board `a`: invalid target: TargetPlatform.Arch `MIPS`",
            ),
            (
                "[[board]]\nname = \"a\"\nhost = \"h\"\ntarget_device = \"jetson_xavier\"\nworkdir = \"rel\"\n",
                "absolute",
            ),
            ("[[board]]\nname = \"a\"\nhost = \"h\"\ntarget_device = \"jetson_xavier\"\nusr = \"x\"\n", "usr"),
            ("", "no [[board]] entries"),
        ];
        for (text, want) in cases {
            let e = parse_inventory(text, Path::new("/")).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let twice = "[[board]]\nname = \"a\"\nhost = \"h\"\ntarget_device = \"jetson_xavier\"\n".repeat(2);
        assert!(parse_inventory(&twice, Path::new("/")).unwrap_err().to_string().contains("used twice"));
    }
}
