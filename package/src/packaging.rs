//! What a packaging job does: load the model version (verified against its SHA-256), build
//! the target, plan for the target's kernel set with pre-packed weights, check parity, write
//! the component (recipe, plan, model, `manifest.json`, parity report) and publish it
//! atomically.

use kernels::Target;
use serde_json::json;

use crate::agent_component::{self, AGENT_VERSION};
use crate::blobs::sha256_hex;
use crate::component::{recipe, RecipeInput, AGENT_COMPONENT, RECIPE_FILE};
use crate::error::{ApiError, Result};
use crate::jobs::JobRow;
use crate::manifest::{
    AgentRef, ComponentId, Manifest, ModelRef, ParityRef, PlanInfo, TargetConfiguration, TargetInfo, ToolInfo,
    SCHEMA_VERSION,
};
use crate::output::OutputFile;
use crate::parity;
use crate::shapes::{GreengrassOutputDetails, ModelPackagingOutputDetails};
use crate::validate::target_of;
use crate::Service;

/// The file a component is published with last (see [`crate::output::OutputStore::publish`]):
/// input for `aws greengrassv2 create-component-version`.
pub const LAST_FILE: &str = "create-component-version.json";
/// The plan artifact.
pub const PLAN_FILE: &str = "model.eppl";
/// The model artifact (the ONNX file as imported).
pub const MODEL_FILE: &str = "model.onnx";
/// The manifest artifact ([`Manifest`]).
pub const MANIFEST_FILE: &str = "manifest.json";
/// The parity report artifact.
pub const PARITY_FILE: &str = "parity.json";
/// A model component's artifacts, in the recipe's order.
pub const ARTIFACTS: [&str; 4] = [PLAN_FILE, MODEL_FILE, MANIFEST_FILE, PARITY_FILE];

/// The ARN of a component version.
pub fn component_arn(name: &str, version: &str) -> String {
    // The API model's `ComponentVersionArn` pattern wants `aws` in the account field.
    format!("arn:edgepack:greengrass:local:aws:components:{name}:versions:{version}")
}

/// The key prefix of a component: `<Prefix>/<ComponentName>/<ComponentVersion>`.
pub fn key_prefix(prefix: Option<&str>, name: &str, version: &str) -> String {
    match prefix.map(|p| p.trim_end_matches('/')).filter(|p| !p.is_empty()) {
        Some(p) => format!("{p}/{name}/{version}"),
        None => format!("{name}/{version}"),
    }
}

fn file(name: &str, bytes: Vec<u8>) -> OutputFile {
    OutputFile { name: name.into(), bytes }
}

fn pretty(v: &impl serde::Serialize) -> Vec<u8> {
    let mut s = serde_json::to_string_pretty(v).expect("serializable");
    s.push('\n');
    s.into_bytes()
}

/// Whether the agent component is already published at `agent_prefix` with a build for `arch`;
/// an agent component there without one is an error (component versions are immutable).
fn agent_recipe(svc: &Service, bucket: &str, agent_prefix: &str, arch: &str) -> Result<bool> {
    let Ok(bytes) = svc.output().get(bucket, &format!("{agent_prefix}/{RECIPE_FILE}")) else {
        return Ok(false);
    };
    let recipe: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if agent_component::recipe_has(&recipe, arch) {
        return Ok(true);
    }
    Err(ApiError::validation(format!(
        "{AGENT_COMPONENT} {AGENT_VERSION} at s3://{bucket}/{agent_prefix}/ has no {arch} build; package for {arch} to another S3OutputLocation prefix"
    )))
}

/// Builds and publishes the component of `job`; returns the output details and the final
/// status message. Fail points (feature `fault-injection`): `job-load`, `job-plan`,
/// `job-parity`, `job-publish`, each right after the status message that names the phase.
pub fn build_component(
    svc: &Service,
    job: &JobRow,
    progress: &dyn Fn(&str),
) -> Result<(ModelPackagingOutputDetails, String)> {
    let gg = job.configuration.greengrass.as_ref().ok_or_else(|| ApiError::internal("job without configuration"))?;
    let target = target_of(gg)?;
    let s3 = gg.s3_output_location.as_ref().ok_or_else(|| ApiError::internal("job without S3OutputLocation"))?;
    let bucket = s3.bucket.clone().unwrap_or_default();
    let prefix = key_prefix(s3.prefix.as_deref(), &job.component_name, &job.component_version);
    progress(&format!("checking the output location s3://{bucket}/{prefix}/"));
    svc.output().check_destination(&bucket, &prefix, LAST_FILE)?;
    let arch = target.arch.greengrass_name();
    let agent_dir = svc.settings.agent_dir.clone().or_else(agent_component::default_dir);
    let agent_binary = agent_component::binary(agent_dir.as_deref(), arch)?;
    let agent_prefix = key_prefix(s3.prefix.as_deref(), AGENT_COMPONENT, AGENT_VERSION);
    let agent_published = agent_recipe(svc, &bucket, &agent_prefix, arch)?;
    let install = agent_component::install_script(arch);
    let Checked { m, onnx, planned, par } = plan_and_check(svc, job, &target, &install, progress)?;
    progress("writing the component");
    let manifest = manifest(job, &m, gg, &target, &planned, &par, arch);
    let artifacts = vec![
        file(PLAN_FILE, planned.bytes),
        file(MODEL_FILE, onnx),
        file(MANIFEST_FILE, pretty(&manifest)),
        file(PARITY_FILE, pretty(&par.report)),
    ];
    let uris: Vec<(String, &OutputFile)> =
        artifacts.iter().map(|f| (format!("s3://{bucket}/{prefix}/{}", f.name), f)).collect();
    let description = gg
        .component_description
        .clone()
        .unwrap_or_else(|| format!("{} model version {} for {}", job.project, m.version, target));
    let recipe = recipe(&RecipeInput {
        name: &job.component_name,
        version: &job.component_version,
        description,
        architecture: arch,
        artifacts: uris,
        install,
    });
    let recipe_bytes = pretty(&recipe);
    let create = create_input(&recipe_bytes, gg);
    let (recipe_file, create_file) = (file(RECIPE_FILE, recipe_bytes), file(LAST_FILE, create));
    // Signed: the recipe (every artifact's digest) and the input Greengrass is given.
    let signer = svc.signer()?;
    let signature = signer.sign(&[&recipe_file, &create_file]);
    let mut files = artifacts;
    files.extend([signature, recipe_file, create_file]);
    // The agent component first: shared and immutable, it serves whichever job comes next if
    // this one fails after it (the model component's publish records the job's success).
    let agent =
        Agent { dir: agent_dir.as_deref(), binary: agent_binary, prefix: &agent_prefix, published: agent_published };
    let agent_note = publish_agent(svc, job, &bucket, arch, agent, &signer, progress)?;
    let output = ModelPackagingOutputDetails {
        greengrass: GreengrassOutputDetails {
            component_version_arn: component_arn(&job.component_name, &job.component_version),
            component_name: job.component_name.clone(),
            component_version: job.component_version.clone(),
        },
    };
    let message = format!(
        "component {} {} published to s3://{bucket}/{prefix}/ ({}); {agent_note}; {}",
        job.component_name,
        job.component_version,
        svc.output().locate(&bucket, &prefix),
        par.summary
    );
    progress(&format!("publishing to s3://{bucket}/{prefix}/"));
    fail::fail_point!("job-publish");
    // Fenced: a worker whose job was failed meanwhile (stopped past the heartbeat limit, its
    // component version free for another job) publishes nothing; the job becomes SUCCEEDED in
    // the same job store transaction that makes the component visible, so a store that cannot
    // record it (a full disk) leaves no published component behind a job that is not.
    let outcome = Some((&output, message.as_str()));
    let fence = crate::worker::JobFence { svc, project: &job.project, name: &job.name, outcome };
    svc.output().publish_fenced(&bucket, &prefix, &files, &fence)?;
    Ok((output, message))
}

/// The input of `aws greengrassv2 create-component-version --cli-input-json file://…`: the
/// recipe inline and the job's tags.
fn create_input(recipe: &[u8], gg: &crate::shapes::GreengrassConfiguration) -> Vec<u8> {
    let tags: serde_json::Map<String, serde_json::Value> = gg
        .tags
        .iter()
        .flatten()
        .map(|t| (t.key.clone().unwrap_or_default(), t.value.clone().unwrap_or_default().into()))
        .collect();
    let create = json!({
        "inlineRecipe": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, recipe),
        "tags": tags,
    });
    pretty(&create)
}

/// A job's plan, its file and the kernel set it was built for.
struct Planned {
    plan: model::plan::Plan,
    bytes: Vec<u8>,
    set_id: kernels::KernelSetId,
}

/// What a job's model became for its target: the stored model and its file, the plan, and
/// the parity check's outcome.
struct Checked {
    m: crate::projects::StoredModel,
    onnx: Vec<u8>,
    planned: Planned,
    par: parity::ParityOutcome,
}

/// Loads, imports and plans the model of `job` for `target`, then checks parity on its kernel
/// set; a failed check is an error (nothing is published). `install` is the component's
/// Install script, which the parity report names.
fn plan_and_check(
    svc: &Service,
    job: &JobRow,
    target: &Target,
    install: &str,
    progress: &dyn Fn(&str),
) -> Result<Checked> {
    progress(&format!("loading model version {}", job.model_version));
    fail::fail_point!("job-load");
    let m = svc.stored_model(&job.project, &job.model_version)?;
    let onnx = svc.model_file(&m.sha256)?;
    progress("importing and optimising the model");
    let model_err = |e: model::ModelError| ApiError::validation(format!("model {}/{}: {e}", job.project, m.version));
    let prepared = model::prepare(&onnx, std::slice::from_ref(&m.contract.input.shape)).map_err(model_err)?;
    progress("estimating the memory the check needs");
    svc.check_memory(&prepared, &m.contract.input.shape)?;
    let set_id = target.kernel_set();
    progress(&format!("planning for kernel set {set_id} ({target})"));
    fail::fail_point!("job-plan");
    let set = kernels::packer(set_id);
    let plan = model::plan::build(&prepared.optimized, &*set).map_err(model_err)?;
    let bytes = plan.to_bytes();
    progress(&format!("checking parity on {set_id}"));
    fail::fail_point!("job-parity");
    let par = parity::check(&prepared, &bytes, &m.contract, set_id, svc.settings.threads, install)
        .map_err(|e| ApiError::internal(format!("parity check: {e}")))?;
    if par.status == parity::ParityStatus::Failed {
        return Err(ApiError::validation(format!("{}; nothing was published", par.summary)));
    }
    Ok(Checked { m, onnx, planned: Planned { plan, bytes, set_id }, par })
}

/// The component's manifest: what was packaged, for which target, with which plan and parity.
fn manifest(
    job: &JobRow,
    m: &crate::projects::StoredModel,
    gg: &crate::shapes::GreengrassConfiguration,
    target: &Target,
    planned: &Planned,
    par: &parity::ParityOutcome,
    arch: &str,
) -> Manifest {
    Manifest {
        schema_version: SCHEMA_VERSION,
        component: ComponentId { name: job.component_name.clone(), version: job.component_version.clone() },
        model: ModelRef {
            project: job.project.clone(),
            model_version: m.version.to_string(),
            model_arn: crate::projects::model_arn(&job.project, m.version),
            sha256: m.sha256.clone(),
            source: m.source.clone(),
            file: MODEL_FILE.into(),
        },
        target: TargetInfo {
            configuration: TargetConfiguration {
                target_device: gg.target_device.clone(),
                target_platform: gg.target_platform.clone(),
                compiler_options: gg.compiler_options.clone(),
            },
            resolved: target.to_string(),
            kernel_set: planned.set_id.name().into(),
            cpu_kernel_set: target.cpu_kernel_set().name().into(),
        },
        contract: m.contract.clone(),
        plan: PlanInfo {
            file: PLAN_FILE.into(),
            sha256: sha256_hex(&planned.bytes),
            steps: planned.plan.steps.len(),
            flops: planned.plan.flops,
            activation_bytes: planned.plan.activation_bytes(),
            weight_bytes: planned.plan.weight_bytes(),
        },
        parity: ParityRef { file: PARITY_FILE.into(), status: par.status.name().into() },
        tool: ToolInfo { name: "edgepack".into(), version: env!("CARGO_PKG_VERSION").into() },
        agent: AgentRef {
            component: AGENT_COMPONENT.into(),
            version: AGENT_VERSION.into(),
            binary: agent_component::binary_name(arch),
        },
    }
}

/// The agent component a job publishes beside its model: the build for the job's
/// architecture, where the others are found, its S3 prefix and whether it is there already.
struct Agent<'a> {
    dir: Option<&'a std::path::Path>,
    binary: Vec<u8>,
    prefix: &'a str,
    published: bool,
}

/// Publishes the agent component unless it is there already; returns the job message's note.
/// It goes first: shared and immutable, it serves whichever job comes next if this one fails
/// after it (the model component's publish records the job's success).
fn publish_agent(
    svc: &Service,
    job: &JobRow,
    bucket: &str,
    arch: &str,
    agent: Agent<'_>,
    signer: &crate::signing::Signer,
    progress: &dyn Fn(&str),
) -> Result<String> {
    let prefix = agent.prefix;
    if agent.published {
        return Ok(format!("{AGENT_COMPONENT} {AGENT_VERSION} already at s3://{bucket}/{prefix}/"));
    }
    progress(&format!("publishing {AGENT_COMPONENT} {AGENT_VERSION} ({arch}) to s3://{bucket}/{prefix}/"));
    let mut builds = vec![(arch, agent.binary)];
    builds.extend(agent_component::other_builds(agent.dir, arch));
    let files = agent_component::files(builds, bucket, prefix, signer);
    // Fenced too: a worker whose job was failed meanwhile publishes nothing at all.
    let fence = crate::worker::JobFence { svc, project: &job.project, name: &job.name, outcome: None };
    if let Err(e) = svc.output().publish_fenced(bucket, prefix, &files, &fence) {
        if e.kind == crate::ErrorKind::Conflict {
            return Err(e);
        }
        // Another job may have published it meanwhile: that one serves as well.
        if !agent_recipe(svc, bucket, prefix, arch)? {
            return Err(e);
        }
    }
    Ok(format!("{AGENT_COMPONENT} {AGENT_VERSION} ({arch}) published to s3://{bucket}/{prefix}/"))
}
