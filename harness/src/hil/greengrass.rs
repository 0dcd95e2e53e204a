//! Published components laid out as AWS IoT Greengrass v2 installs them on a device, and their
//! lifecycle scripts with Greengrass's recipe variables filled in, so that a board runs a
//! model component's `Install` step (the device parity check) and the agent component's `Run`
//! step as a device would, without a Greengrass nucleus.
//!
//! A deployment of the published component folders (`<name>/<version>/` holding `recipe.json`
//! and the artifacts, as a packaging job writes them to S3) is staged on the host under the
//! board's Greengrass root: `packages/artifacts/<name>/<version>/` (the artifacts of the
//! manifest for the board's architecture, with the recipe's permissions),
//! `packages/recipes/<name>-<version>.json` and `work/<name>/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Why a deployment could not be staged or a lifecycle script filled in.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A file or folder of the deployment could not be read, written or created.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// What was tried (`read`, `copy`, …).
        what: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A recipe that does not hold what Greengrass needs (not JSON, no name, no manifest for
    /// the architecture, an artifact URI without a file name).
    #[error("{recipe}: {reason}")]
    Recipe {
        /// The recipe's file or component name.
        recipe: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A folder of published components that holds none.
    #[error("{} holds no published component (<name>/<version>/recipe.json)", .0.display())]
    NothingPublished(PathBuf),
    /// A component the deployment does not hold.
    #[error("no component {0} in the deployment")]
    NoComponent(String),
    /// A lifecycle script with a recipe variable left unfilled.
    #[error("{component} {step}: unfilled recipe variable in `{script}`")]
    Unfilled {
        /// The component.
        component: String,
        /// The lifecycle step.
        step: String,
        /// The script as filled in.
        script: String,
    },
}

/// An I/O error of [`DeployError`].
fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DeployError {
    let path = path.to_path_buf();
    move |source| DeployError::Io { what, path, source }
}

/// A [`DeployError::Recipe`].
fn recipe_error(recipe: impl std::fmt::Display, reason: impl Into<String>) -> DeployError {
    DeployError::Recipe { recipe: recipe.to_string(), reason: reason.into() }
}

/// One component of a deployment.
#[derive(Debug, Clone)]
pub struct Component {
    /// `ComponentName`.
    pub name: String,
    /// `ComponentVersion`.
    pub version: String,
    /// The recipe.
    pub recipe: Value,
}

/// Published components staged for one board.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Greengrass's root on the board (`{kernel:rootPath}`).
    pub root: String,
    /// Greengrass's name of the board's architecture ([`kernels::Arch::greengrass_name`]).
    pub arch: String,
    /// The components, by name.
    pub components: BTreeMap<String, Component>,
}

/// The published component folders under `dir`: every `<name>/<version>/recipe.json`.
pub fn published(dir: &Path) -> Result<Vec<PathBuf>, DeployError> {
    let mut found = Vec::new();
    for name in std::fs::read_dir(dir).map_err(io("read", dir))? {
        let name = name.map_err(io("read", dir))?.path();
        if !name.is_dir() {
            continue;
        }
        for version in std::fs::read_dir(&name).map_err(io("read", &name))? {
            let version = version.map_err(io("read", &name))?.path();
            if version.join("recipe.json").is_file() {
                found.push(version);
            }
        }
    }
    found.sort();
    match found.is_empty() {
        true => Err(DeployError::NothingPublished(dir.to_path_buf())),
        false => Ok(found),
    }
}

/// The manifest of `recipe` for `arch` (or for every architecture).
fn manifest<'a>(recipe: &'a Value, arch: &str) -> Result<&'a Value, DeployError> {
    recipe["Manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| matches!(m["Platform"]["architecture"].as_str(), Some(a) if a == arch || a == "*"))
        .ok_or_else(|| recipe_error(&recipe["ComponentName"], format!("no manifest for {arch}")))
}

impl Deployment {
    /// Stages the `published` component folders under `stage` (which becomes `root` on the
    /// board) for a board of Greengrass architecture `arch`.
    pub fn stage(published: &[PathBuf], stage: &Path, root: &str, arch: &str) -> Result<Deployment, DeployError> {
        let mut components = BTreeMap::new();
        for dir in published {
            let path = dir.join("recipe.json");
            let text = std::fs::read(&path).map_err(io("read", &path))?;
            let recipe: Value =
                serde_json::from_slice(&text).map_err(|e| recipe_error(path.display(), format!("not JSON: {e}")))?;
            let (Some(name), Some(version)) = (recipe["ComponentName"].as_str(), recipe["ComponentVersion"].as_str())
            else {
                return Err(recipe_error(path.display(), "no ComponentName or ComponentVersion"));
            };
            let (name, version) = (name.to_owned(), version.to_owned());
            let artifacts = stage.join("packages/artifacts").join(&name).join(&version);
            let recipes = stage.join("packages/recipes");
            for d in [&artifacts, &recipes, &stage.join("work").join(&name)] {
                std::fs::create_dir_all(d).map_err(io("create", d))?;
            }
            let to = recipes.join(format!("{name}-{version}.json"));
            std::fs::write(&to, &text).map_err(io("write", &to))?;
            for a in manifest(&recipe, arch)?["Artifacts"].as_array().into_iter().flatten() {
                let uri = a["URI"].as_str().unwrap_or_default();
                let file = uri.rsplit('/').next().filter(|f| !f.is_empty() && *f != "..");
                let file = file.ok_or_else(|| recipe_error(&name, format!("artifact URI `{uri}` names no file")))?;
                let to = artifacts.join(file);
                std::fs::copy(dir.join(file), &to).map_err(io("copy", &dir.join(file)))?;
                let execute = a["Permission"]["Execute"].as_str().is_some_and(|x| x != "NONE");
                set_mode(&to, if execute { 0o755 } else { 0o644 }).map_err(io("chmod", &to))?;
            }
            components.insert(name.clone(), Component { name, version, recipe });
        }
        Ok(Deployment { root: root.to_owned(), arch: arch.to_owned(), components })
    }

    /// `{kernel:rootPath}/packages/artifacts/<name>/<version>` of component `name`.
    pub fn artifacts(&self, name: &str) -> Option<String> {
        let c = self.components.get(name)?;
        Some(format!("{}/packages/artifacts/{}/{}", self.root, c.name, c.version))
    }

    /// `{kernel:rootPath}/work/<name>`.
    pub fn work(&self, name: &str) -> String {
        format!("{}/work/{name}", self.root)
    }

    /// The `step` script (`Install`, `Run`, …) of component `name` with the recipe variables
    /// filled in: its own and its dependencies' artifact paths, its work path, the root, its
    /// default configuration, and `socket` for `{configuration:/Socket}`. `None` when the
    /// component has no such step; an error when a variable is left unfilled.
    pub fn script(&self, name: &str, step: &str, socket: &str) -> Result<Option<String>, DeployError> {
        let c = self.components.get(name).ok_or_else(|| DeployError::NoComponent(name.to_owned()))?;
        let s = &manifest(&c.recipe, &self.arch)?["Lifecycle"][step];
        let Some(script) = s["Script"].as_str().or(s.as_str()) else {
            return Ok(None);
        };
        let mut script = script.replace("{configuration:/Socket}", socket);
        for dep in c.recipe["ComponentDependencies"].as_object().into_iter().flatten().map(|(k, _)| k) {
            if let Some(path) = self.artifacts(dep) {
                script = script.replace(&format!("{{{dep}:artifacts:path}}"), &path);
            }
        }
        let config = c.recipe["ComponentConfiguration"]["DefaultConfiguration"].as_object();
        for (key, value) in config.into_iter().flatten() {
            let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            script = script.replace(&format!("{{configuration:/{key}}}"), &value);
        }
        let script = script
            .replace("{artifacts:path}", &self.artifacts(name).expect("staged"))
            .replace("{work:path}", &self.work(name))
            .replace("{kernel:rootPath}", &self.root);
        match script.contains('{') {
            true => Err(DeployError::Unfilled { component: name.to_owned(), step: step.to_owned(), script }),
            false => Ok(Some(script)),
        }
    }

    /// The deployment's model components: those with an `Install` step (the agent component
    /// has `Run` only).
    pub fn models(&self) -> Vec<&str> {
        let installs =
            |c: &Component| manifest(&c.recipe, &self.arch).is_ok_and(|m| m["Lifecycle"]["Install"].is_object());
        self.components.values().filter(|c| installs(c)).map(|c| c.name.as_str()).collect()
    }

    /// The component whose `Run` step serves the others (the agent).
    pub fn runner(&self) -> Option<&str> {
        let runs = |c: &Component| manifest(&c.recipe, &self.arch).is_ok_and(|m| !m["Lifecycle"]["Run"].is_null());
        self.components.values().find(|c| runs(c)).map(|c| c.name.as_str())
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A model component (Install: parity with the agent's binary) and the agent (Run).
    fn publish(dir: &Path) -> Vec<PathBuf> {
        let model = dir.join("line.Defects/1.0.0");
        let agent = dir.join("edgepack.EdgeAgent/1.2.0");
        std::fs::create_dir_all(&model).unwrap();
        std::fs::create_dir_all(&agent).unwrap();
        let artifact =
            |file: &str, exec: &str| json!({ "URI": format!("s3://b/p/{file}"), "Permission": { "Execute": exec } });
        let model_recipe = json!({
            "ComponentName": "line.Defects", "ComponentVersion": "1.0.0",
            "ComponentDependencies": { "edgepack.EdgeAgent": { "VersionRequirement": ">=1.0.0" } },
            "Manifests": [{ "Platform": { "architecture": "amd64" },
                "Lifecycle": { "Install": { "Script": "{edgepack.EdgeAgent:artifacts:path}/agent parity --component {artifacts:path} --json {work:path}/device-parity.json" } },
                "Artifacts": [artifact("plan.bin", "NONE")] }],
        });
        let agent_recipe = json!({
            "ComponentName": "edgepack.EdgeAgent", "ComponentVersion": "1.2.0",
            "ComponentConfiguration": { "DefaultConfiguration": { "Socket": "unix:///tmp/x.sock", "Queue": 8 } },
            "Manifests": [
                { "Platform": { "architecture": "aarch64" }, "Lifecycle": { "Run": "{artifacts:path}/agent-arm" },
                  "Artifacts": [artifact("agent-arm", "OWNER")] },
                { "Platform": { "architecture": "amd64" },
                  "Lifecycle": { "Run": { "Script": "{artifacts:path}/agent --socket {configuration:/Socket} --queue {configuration:/Queue} --components-dir {kernel:rootPath}/packages/artifacts" } },
                  "Artifacts": [artifact("agent", "OWNER")] },
            ],
        });
        std::fs::write(model.join("recipe.json"), model_recipe.to_string()).unwrap();
        std::fs::write(model.join("plan.bin"), b"plan").unwrap();
        std::fs::write(agent.join("recipe.json"), agent_recipe.to_string()).unwrap();
        std::fs::write(agent.join("agent"), b"#!/bin/sh\n").unwrap();
        std::fs::write(agent.join("agent-arm"), b"elf").unwrap();
        published(dir).unwrap()
    }

    #[test]
    fn components_are_laid_out_and_their_scripts_filled_as_greengrass_does() {
        let tmp = tempfile::tempdir().unwrap();
        let found = publish(&tmp.path().join("bucket"));
        assert_eq!(found.len(), 2);
        let stage = tmp.path().join("stage");
        let d = Deployment::stage(&found, &stage, "/w/gg", "amd64").unwrap();
        let agent = stage.join("packages/artifacts/edgepack.EdgeAgent/1.2.0/agent");
        assert!(agent.is_file() && stage.join("packages/artifacts/line.Defects/1.0.0/plan.bin").is_file());
        // Only the board's architecture's artifacts, with the recipe's permissions.
        assert!(!stage.join("packages/artifacts/edgepack.EdgeAgent/1.2.0/agent-arm").exists());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&agent).unwrap().permissions().mode() & 0o777, 0o755);
        assert!(
            stage.join("packages/recipes/line.Defects-1.0.0.json").is_file()
                && stage.join("work/line.Defects").is_dir()
        );
        assert_eq!(
            d.script("line.Defects", "Install", "unix:///s").unwrap().unwrap(),
            "/w/gg/packages/artifacts/edgepack.EdgeAgent/1.2.0/agent parity --component \
             /w/gg/packages/artifacts/line.Defects/1.0.0 --json /w/gg/work/line.Defects/device-parity.json"
        );
        assert_eq!(
            d.script("edgepack.EdgeAgent", "Run", "unix:///s").unwrap().unwrap(),
            "/w/gg/packages/artifacts/edgepack.EdgeAgent/1.2.0/agent --socket unix:///s --queue 8 \
             --components-dir /w/gg/packages/artifacts"
        );
        assert_eq!(d.script("line.Defects", "Run", "unix:///s").unwrap(), None);
        assert_eq!((d.models(), d.runner()), (vec!["line.Defects"], Some("edgepack.EdgeAgent")));
        // The agent alone on aarch64 (the model has no manifest for it), whose Run is a bare
        // string.
        let arm = Deployment::stage(&found[..1], &tmp.path().join("arm"), "/g", "aarch64").unwrap();
        assert_eq!(
            arm.script("edgepack.EdgeAgent", "Run", "s").unwrap().unwrap(),
            "/g/packages/artifacts/edgepack.EdgeAgent/1.2.0/agent-arm"
        );
    }

    #[test]
    fn what_greengrass_would_refuse_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let found = publish(&tmp.path().join("bucket"));
        // No manifest for the architecture.
        let err = Deployment::stage(&found, &tmp.path().join("s"), "/g", "armv7l").unwrap_err();
        assert!(
            matches!(&err, DeployError::Recipe { .. }) && err.to_string().contains("no manifest for armv7l"),
            "{err}"
        );
        // A variable nobody fills.
        let d = Deployment::stage(&found, &tmp.path().join("t"), "/g", "amd64").unwrap();
        let mut broken = d.clone();
        let c = broken.components.get_mut("line.Defects").unwrap();
        c.recipe["Manifests"][0]["Lifecycle"]["Install"]["Script"] = json!("{iot:thingName}/x");
        assert!(matches!(broken.script("line.Defects", "Install", "s"), Err(DeployError::Unfilled { .. })));
        // A folder without components.
        std::fs::create_dir_all(tmp.path().join("empty")).unwrap();
        let e = published(&tmp.path().join("empty")).unwrap_err();
        assert!(
            matches!(e, DeployError::NothingPublished(_)) && e.to_string().contains("no published component"),
            "{e}"
        );
    }
}
