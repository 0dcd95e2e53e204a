//! A published component on a Greengrass-like device: the model component and the agent
//! component a packaging job published are laid out as Greengrass installs them
//! (`<root>/packages/artifacts/<name>/<version>/`, artifact permissions from the recipe), the
//! model's Install step (device parity with the agent's binary) and the agent's Run step run
//! from their recipes with Greengrass's variables filled in and no `edgepack` on PATH, and a
//! client then uses the model.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent::proto::{bitmap, Bitmap, DescribeModelRequest, DetectAnomaliesRequest, ListModelsRequest};
use serde_json::Value;

/// The recipe's manifest for this device, as Greengrass picks it.
fn manifest(recipe: &Value) -> &Value {
    let arch = if cfg!(target_arch = "aarch64") { "aarch64" } else { "amd64" };
    let m = recipe["Manifests"].as_array().unwrap();
    m.iter().find(|m| m["Platform"]["architecture"] == arch).unwrap_or_else(|| panic!("no {arch} manifest: {recipe}"))
}

/// Installs the component published in `published` under `root` as Greengrass would; returns
/// its recipe and its artifacts folder.
fn install(root: &Path, published: &Path) -> (Value, PathBuf) {
    let recipe: Value = serde_json::from_slice(&std::fs::read(published.join("recipe.json")).unwrap()).unwrap();
    let name = recipe["ComponentName"].as_str().unwrap();
    let version = recipe["ComponentVersion"].as_str().unwrap();
    let dir = root.join("packages/artifacts").join(name).join(version);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(root.join("work").join(name)).unwrap();
    for a in manifest(&recipe)["Artifacts"].as_array().unwrap() {
        let file = a["URI"].as_str().unwrap().rsplit('/').next().unwrap();
        let to = dir.join(file);
        std::fs::copy(published.join(file), &to).unwrap();
        let exec = a["Permission"]["Execute"] != "NONE";
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 })).unwrap();
    }
    (recipe, dir)
}

/// A lifecycle script with Greengrass's recipe variables filled in.
fn script(recipe: &Value, step: &str, root: &Path, socket: &Path) -> String {
    let name = recipe["ComponentName"].as_str().unwrap();
    let version = recipe["ComponentVersion"].as_str().unwrap();
    let arts = |n: &str, v: &str| root.join("packages/artifacts").join(n).join(v).display().to_string();
    let agent_version = package::agent_component::AGENT_VERSION;
    let config = &recipe["ComponentConfiguration"]["DefaultConfiguration"];
    let mut s = manifest(recipe)["Lifecycle"][step]["Script"].as_str().unwrap().to_owned();
    s = s.replace("{edgepack.EdgeAgent:artifacts:path}", &arts("edgepack.EdgeAgent", agent_version));
    s = s.replace("{artifacts:path}", &arts(name, version));
    s = s.replace("{work:path}", &root.join("work").join(name).display().to_string());
    s = s.replace("{kernel:rootPath}", &root.display().to_string());
    s = s.replace("{configuration:/Socket}", &format!("unix://{}", socket.display()));
    for key in ["CallThreads", "Queue"] {
        s = s.replace(&format!("{{configuration:/{key}}}"), &config[key].to_string());
    }
    assert!(!s.contains('{'), "every variable filled in: {s}");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_components_run_on_a_device_with_nothing_else() {
    let c = common::components();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("greengrass/v2");
    let socket = tmp.path().join("agent.sock");
    let (model_recipe, _) = install(&root, &c.segmentation);
    let (agent_recipe, agent_dir) = install(&root, &c.agent);
    assert_eq!(model_recipe["ComponentDependencies"]["edgepack.EdgeAgent"]["DependencyType"], "HARD");
    assert!(std::fs::read_dir(&agent_dir).unwrap().count() == 1, "the agent component holds only its binary");

    // Install: the device parity check, with the agent's binary; PATH has no edgepack.
    let install = script(&model_recipe, "Install", &root, &socket);
    assert!(!install.contains("edgepack parity"), "{install}");
    let out = Command::new("sh").arg("-c").arg(&install).env_clear().env("PATH", "/usr/bin:/bin").output().unwrap();
    assert!(
        out.status.success(),
        "{install}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("device parity PASSED"));
    let report: Value =
        serde_json::from_slice(&std::fs::read(root.join("work/factory.Defects/device-parity.json")).unwrap()).unwrap();
    assert_eq!(report["Status"], "PASSED");
    assert!(report["Outputs"][0]["MaxRelErr"].as_f64().unwrap() <= 1e-4);

    // Run: the agent on the artifacts tree.
    let run = script(&agent_recipe, "Run", &root, &socket);
    let mut agent = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {run}"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !socket.exists() {
        assert!(t.elapsed() < Duration::from_secs(20), "the agent did not open its socket");
        assert!(agent.try_wait().unwrap().is_none(), "the agent exited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut client = agent::client::connect(&socket).await.unwrap();
    let models = client.list_models(ListModelsRequest {}).await.unwrap().into_inner().models;
    let names: Vec<&str> = models.iter().map(|m| m.model_component.as_str()).collect();
    assert_eq!(names, ["factory.Defects"], "the agent's own component is not a model");
    assert!(models[0].status_message.contains("device parity PASSED"), "{}", models[0].status_message);
    common::start_running(&mut client, "factory.Defects").await;
    let px = common::image(200, 150, 3);
    let r = client
        .detect_anomalies(DetectAnomaliesRequest {
            model_component: "factory.Defects".into(),
            bitmap: Some(Bitmap { width: 200, height: 150, data: Some(bitmap::Data::ByteData(px)) }),
            anomaly_mask_params: None,
        })
        .await
        .unwrap()
        .into_inner();
    let mask = r.detect_anomaly_result.unwrap().anomaly_mask.unwrap();
    assert_eq!((mask.width, mask.height), (200, 150));
    let d = client.describe_model(DescribeModelRequest { model_component: "factory.Defects".into() }).await.unwrap();
    assert!(d.into_inner().model_description.unwrap().status_message.contains("running version 1.0.0"));

    // A second agent on the same socket is refused; SIGTERM stops the first and removes its socket.
    let binary = std::fs::read_dir(&agent_dir).unwrap().next().unwrap().unwrap().path();
    let second = Command::new(binary)
        .args([
            "--socket",
            &socket.display().to_string(),
            "--components-dir",
            &root.join("packages/artifacts").display().to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&second.stderr).contains("another agent is serving"));
    // SAFETY: sending SIGTERM to our own child process.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let status = agent.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "the socket is removed on SIGTERM");
}
