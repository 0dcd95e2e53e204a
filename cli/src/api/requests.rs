//! Requests built from arguments and `file://` inputs: `import-model`, `start-model-packaging-job`.

use package::contract::{InputSpec, MaskClass, ModelContract, OutputSpec};
use package::projects::ImportModel;
use package::shapes::{ModelPackagingConfiguration, StartModelPackagingJobRequest};

use super::args::{ImportArgs, StartArgs};

pub(super) fn import_request(a: &ImportArgs) -> Result<ImportModel, String> {
    let doc = a.input.load()?;
    let project_name = doc.required(a.project_name.clone(), "ProjectName", "--project-name")?;
    let model = std::path::PathBuf::from(doc.required(
        a.model.as_ref().map(|m| m.to_string_lossy().into_owned()),
        "Model",
        "--model",
    )?);
    let contract_arg = doc.opt(a.contract.clone(), "Contract")?;
    let description = doc.opt(a.description.clone(), "Description")?;
    let onnx = std::fs::read(&model).map_err(|e| format!("--model {}: {e}", model.display()))?;
    let contract = match &contract_arg {
        Some(c) => serde_json::from_str::<ModelContract>(&read_arg(c)?).map_err(|e| format!("--contract: {e}"))?,
        None => {
            let shape = a.input_shape.as_deref().ok_or("--input-shape (or --contract) is required")?;
            let shape: Vec<usize> = shape
                .split('x')
                .map(|d| d.parse().map_err(|_| format!("--input-shape {shape}: expected 1x3xHxW")))
                .collect::<Result<_, _>>()?;
            let name = match &a.input_name {
                Some(n) => n.clone(),
                None => {
                    let g = model::import(&onnx).map_err(|e| format!("--model {}: {e}", model.display()))?;
                    let names: Vec<&str> = g.inputs.iter().map(|&i| g.values[i].name.as_str()).collect();
                    match names[..] {
                        [n] => n.to_owned(),
                        _ => return Err(format!("the model has inputs {names:?}: name one with --input-name")),
                    }
                }
            };
            let three = |v: &[f64], what: &str| -> Result<[f64; 3], String> {
                v.try_into().map_err(|_| format!("--{what} needs 3 values (r,g,b), got {}", v.len()))
            };
            let output = match (&a.anomaly_output, &a.mask_output) {
                (Some(o), None) => OutputSpec::Classification {
                    score_output: o.clone(),
                    score_index: a.score_index,
                    threshold: a.threshold,
                },
                (None, Some(o)) => OutputSpec::Segmentation {
                    mask_output: o.clone(),
                    classes: a
                        .mask_classes
                        .iter()
                        .map(|c| {
                            let (name, color) = c
                                .split_once(':')
                                .ok_or_else(|| format!("--mask-classes {c}: expected name:#rrggbb"))?;
                            Ok(MaskClass { name: name.into(), color: color.into() })
                        })
                        .collect::<Result<_, String>>()?,
                    threshold: a.threshold,
                },
                _ => return Err("give --anomaly-output (classification) or --mask-output (segmentation)".into()),
            };
            ModelContract {
                input: InputSpec {
                    name,
                    shape,
                    scale: a.scale,
                    mean: three(&a.mean, "mean")?,
                    std: three(&a.std, "std")?,
                },
                output,
            }
        }
    };
    Ok(ImportModel {
        project_name,
        onnx,
        source: model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        description,
        contract,
    })
}

pub(super) fn start_request(a: &StartArgs) -> Result<StartModelPackagingJobRequest, String> {
    let mut req: StartModelPackagingJobRequest = a.input.load()?.parse()?;
    let set = |field: &mut Option<String>, v: &Option<String>| {
        if v.is_some() {
            field.clone_from(v);
        }
    };
    set(&mut req.project_name, &a.project_name);
    set(&mut req.model_version, &a.model_version);
    set(&mut req.job_name, &a.job_name);
    set(&mut req.description, &a.description);
    set(&mut req.client_token, &a.client_token);
    if let Some(c) = &a.configuration {
        // JSON, a file, or the AWS CLI's shorthand syntax (`Greengrass={TargetDevice=…,…}`).
        let c: ModelPackagingConfiguration = if super::shorthand::looks_like(c) {
            let v = super::shorthand::parse(c).map_err(|e| format!("--configuration: {e}"))?;
            serde_json::from_value(v).map_err(|e| format!("--configuration (shorthand syntax): {e}"))?
        } else {
            serde_json::from_str(&read_arg(c)?).map_err(|e| format!("--configuration: {e}"))?
        };
        req.configuration = Some(c);
    }
    // As the AWS SDKs do: a token for every call, so that a retry of this call is safe.
    if req.client_token.is_none() {
        req.client_token = Some(uuid::Uuid::new_v4().to_string());
    }
    Ok(req)
}

/// An argument's text, or the file a `file://` argument names.
pub(super) fn read_arg(s: &str) -> Result<String, String> {
    match s.strip_prefix("file://") {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}")),
        None => Ok(s.to_owned()),
    }
}
