//! Every constraint of the API model (lengths, patterns, enums, required members) and every
//! prose rule of the packaging job, checked before anything is stored.
//!
//! Violations are collected and reported together, the way the service did: `2 validation
//! errors detected: Value 'x' at 'JobName' failed to satisfy constraint: …; …`. Paths use
//! the request's member names (`Configuration.Greengrass.ComponentName`).

use kernels::Target;
use regex::Regex;

use crate::error::{ApiError, Result};
use crate::shapes::{GreengrassConfiguration, StartModelPackagingJobRequest, Tag};

/// A string member's constraints: length in characters and a pattern the whole value must
/// match.
#[derive(Debug, Clone, Copy)]
pub struct StrRule {
    /// Fewest characters.
    pub min: usize,
    /// Most characters.
    pub max: usize,
    /// The API model's pattern, matched against the whole value.
    pub pattern: Option<&'static str>,
}

impl StrRule {
    /// Whether `v` keeps the length limits and matches the pattern.
    pub fn accepts(&self, v: &str) -> bool {
        let len = v.chars().count();
        (self.min..=self.max).contains(&len) && self.pattern_matches(v)
    }

    fn pattern_matches(&self, v: &str) -> bool {
        // The API model's patterns are matched against the whole value.
        self.pattern.is_none_or(|p| Regex::new(&format!("^(?:{p})$")).expect("API model patterns compile").is_match(v))
    }
}

const fn rule(min: usize, max: usize, pattern: &'static str) -> StrRule {
    StrRule { min, max, pattern: Some(pattern) }
}

/// `ProjectName`.
pub const PROJECT_NAME: StrRule = rule(1, 255, r"[a-zA-Z0-9][a-zA-Z0-9_\-]*");
/// `ModelVersion` (a number or `latest`).
pub const MODEL_VERSION: StrRule = rule(1, 10, r"([1-9][0-9]*|latest)");
/// `ModelVersionNoLatest` (`DeleteModel` names a version by number only).
pub const MODEL_VERSION_NO_LATEST: StrRule = rule(1, 10, r"([1-9][0-9]*)");
/// `ModelPackagingJobName`.
pub const JOB_NAME: StrRule = rule(1, 64, r"[a-zA-Z0-9-]+");
/// `CompilerOptions`.
pub const COMPILER_OPTIONS: StrRule = rule(3, 1024, r"(?s).*");
/// `S3BucketName`.
pub const BUCKET: StrRule = rule(3, 63, r"[0-9A-Za-z\.\-_]*");
/// `S3KeyPrefix`.
pub const PREFIX: StrRule = rule(0, 1024, r"([a-zA-Z0-9!_.*'()-][/a-zA-Z0-9!_.*'()-]*)?");
/// `ComponentName`.
pub const COMPONENT_NAME: StrRule = rule(1, 128, r"[a-zA-Z0-9-_.]+");
/// `ComponentVersion` (semantic version).
pub const COMPONENT_VERSION: StrRule = rule(1, 64, r"([0-9]{1,6})\.([0-9]{1,6})\.([0-9]{1,6})");
/// `ComponentDescription` and `ModelPackagingJobDescription`.
pub const DESCRIPTION: StrRule = rule(1, 256, r"[a-zA-Z0-9-_. ()':,;?]+");
/// `TagKey`.
pub const TAG_KEY: StrRule = rule(1, 128, r"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)");
/// `TagValue`.
pub const TAG_VALUE: StrRule = rule(0, 256, r"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)");
/// `ClientToken`.
pub const CLIENT_TOKEN: StrRule = rule(1, 64, r"[a-zA-Z0-9-]+");
/// `PaginationToken`.
pub const PAGINATION_TOKEN: StrRule = rule(0, 2048, r"[a-zA-Z0-9\/\+\=]{0,2048}");
/// Most tags on a component.
pub const MAX_TAGS: usize = 200;
/// `PageSize` bounds (`MaxResults`).
pub const PAGE_SIZE: (i64, i64) = (1, 100);

/// Violations found so far.
#[derive(Debug, Default)]
pub struct Violations(Vec<String>);

impl Violations {
    /// Records a violation of `constraint` by `value` at `path`.
    pub fn push(&mut self, value: &str, path: &str, constraint: &str) {
        self.0.push(format!("Value '{value}' at '{path}' failed to satisfy constraint: {constraint}"));
    }

    /// Records a rule broken at `path` (a prose rule, not one member's constraint).
    pub fn rule(&mut self, path: &str, message: &str) {
        self.0.push(format!("{path}: {message}"));
    }

    /// A required member that is missing.
    pub fn missing(&mut self, path: &str) {
        self.0.push(format!("Value null at '{path}' failed to satisfy constraint: Member must not be null"));
    }

    /// Checks an optional string member.
    pub fn check(&mut self, path: &str, value: Option<&str>, r: &StrRule) {
        let Some(v) = value else { return };
        let len = v.chars().count();
        if len < r.min {
            self.push(v, path, &format!("Member must have length greater than or equal to {}", r.min));
        }
        if len > r.max {
            let shown: String = v.chars().take(64).collect();
            self.push(&shown, path, &format!("Member must have length less than or equal to {}", r.max));
        } else if !r.pattern_matches(v) {
            let p = r.pattern.unwrap_or_default();
            self.push(v, path, &format!("Member must satisfy regular expression pattern: {p}"));
        }
    }

    /// Checks a required string member.
    pub fn required(&mut self, path: &str, value: Option<&str>, r: &StrRule) {
        match value {
            None => self.missing(path),
            Some(_) => self.check(path, value, r),
        }
    }

    /// Checks an enum member.
    pub fn one_of(&mut self, path: &str, value: Option<&str>, allowed: &[&str]) {
        if let Some(v) = value.filter(|v| !allowed.contains(v)) {
            self.push(v, path, &format!("Member must satisfy enum value set: [{}]", allowed.join(", ")));
        }
    }

    /// Checks `MaxResults` and `NextToken` of a list request.
    pub fn page(&mut self, max_results: Option<i64>, next_token: Option<&str>) {
        if let Some(m) = max_results.filter(|m| !(PAGE_SIZE.0..=PAGE_SIZE.1).contains(m)) {
            let c = if m < PAGE_SIZE.0 {
                format!("Member must have value greater than or equal to {}", PAGE_SIZE.0)
            } else {
                format!("Member must have value less than or equal to {}", PAGE_SIZE.1)
            };
            self.push(&m.to_string(), "MaxResults", &c);
        }
        self.check("NextToken", next_token, &PAGINATION_TOKEN);
    }

    /// `Ok` when nothing was found, else one `ValidationException` listing everything.
    pub fn finish(self) -> Result<()> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(ApiError::validation(format!("1 validation error detected: {}", self.0[0]))),
            n => Err(ApiError::validation(format!("{n} validation errors detected: {}", self.0.join("; ")))),
        }
    }
}

/// Checks `MaxResults` and `NextToken` of a list request; returns the page size (default 100).
pub fn page_size(max_results: Option<i64>, next_token: Option<&str>) -> Result<i64> {
    let mut v = Violations::default();
    v.page(max_results, next_token);
    v.finish()?;
    Ok(max_results.unwrap_or(PAGE_SIZE.1))
}

/// A start request that passed validation, with its target resolved.
#[derive(Debug, Clone)]
pub struct ValidStart {
    /// The project.
    pub project_name: String,
    /// A version number or `latest` (resolved by the service).
    pub model_version: String,
    /// The Greengrass configuration as given.
    pub greengrass: GreengrassConfiguration,
    /// The hardware it describes.
    pub target: Target,
}

/// Checks a `StartModelPackagingJob` request: every member's constraints, then the prose
/// rules of the configuration (TargetDevice xor TargetPlatform, no CompilerOptions with a
/// TargetDevice, NVIDIA's required compiler options, …).
pub fn start_request(r: &StartModelPackagingJobRequest) -> Result<ValidStart> {
    let mut v = Violations::default();
    v.required("ProjectName", r.project_name.as_deref(), &PROJECT_NAME);
    v.required("ModelVersion", r.model_version.as_deref(), &MODEL_VERSION);
    v.check("JobName", r.job_name.as_deref(), &JOB_NAME);
    v.check("Description", r.description.as_deref(), &DESCRIPTION);
    v.check("ClientToken", r.client_token.as_deref(), &CLIENT_TOKEN);
    let gg = match &r.configuration {
        None => {
            v.missing("Configuration");
            None
        }
        Some(c) => match &c.greengrass {
            None => {
                v.missing("Configuration.Greengrass");
                None
            }
            Some(g) => Some(g),
        },
    };
    if let Some(g) = gg {
        greengrass_members(&mut v, g);
    }
    v.finish()?;
    let g = gg.expect("checked above").clone();
    let target = target_of(&g)?;
    Ok(ValidStart {
        project_name: r.project_name.clone().expect("checked above"),
        model_version: r.model_version.clone().expect("checked above"),
        greengrass: g,
        target,
    })
}

fn greengrass_members(v: &mut Violations, g: &GreengrassConfiguration) {
    const P: &str = "Configuration.Greengrass";
    v.check(&format!("{P}.CompilerOptions"), g.compiler_options.as_deref(), &COMPILER_OPTIONS);
    v.one_of(&format!("{P}.TargetDevice"), g.target_device.as_deref(), kernels::vocabulary::DEVICES);
    if let Some(tp) = &g.target_platform {
        let os = format!("{P}.TargetPlatform.Os");
        let arch = format!("{P}.TargetPlatform.Arch");
        match tp.os.as_deref() {
            None => v.missing(&os),
            o => v.one_of(&os, o, &["LINUX"]),
        }
        match tp.arch.as_deref() {
            None => v.missing(&arch),
            a => v.one_of(&arch, a, &["ARM64", "X86_64"]),
        }
        v.one_of(&format!("{P}.TargetPlatform.Accelerator"), tp.accelerator.as_deref(), &["NVIDIA"]);
    }
    match &g.s3_output_location {
        None => v.missing(&format!("{P}.S3OutputLocation")),
        Some(s3) => {
            v.required(&format!("{P}.S3OutputLocation.Bucket"), s3.bucket.as_deref(), &BUCKET);
            v.check(&format!("{P}.S3OutputLocation.Prefix"), s3.prefix.as_deref(), &PREFIX);
        }
    }
    v.required(&format!("{P}.ComponentName"), g.component_name.as_deref(), &COMPONENT_NAME);
    v.check(&format!("{P}.ComponentVersion"), g.component_version.as_deref(), &COMPONENT_VERSION);
    v.check(&format!("{P}.ComponentDescription"), g.component_description.as_deref(), &DESCRIPTION);
    if let Some(tags) = &g.tags {
        tag_list(v, &format!("{P}.Tags"), tags);
    }
    // Prose rules of the configuration.
    match (&g.target_device, &g.target_platform) {
        (Some(_), Some(_)) => v.rule(P, "TargetDevice and TargetPlatform are mutually exclusive; specify one of them"),
        (None, None) => v.rule(P, "specify TargetDevice or TargetPlatform (one of them picks the hardware)"),
        (Some(_), None) if g.compiler_options.is_some() => {
            v.rule(&format!("{P}.CompilerOptions"), "CompilerOptions cannot be specified with TargetDevice")
        }
        _ => {}
    }
}

fn tag_list(v: &mut Violations, path: &str, tags: &[Tag]) {
    if tags.len() > MAX_TAGS {
        v.push(
            &format!("[{} tags]", tags.len()),
            path,
            &format!("Member must have length less than or equal to {MAX_TAGS}"),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, t) in tags.iter().enumerate() {
        v.required(&format!("{path}.{}.Key", i + 1), t.key.as_deref(), &TAG_KEY);
        v.required(&format!("{path}.{}.Value", i + 1), t.value.as_deref(), &TAG_VALUE);
        if let Some(k) = &t.key {
            if !seen.insert(k.as_str()) {
                v.rule(&format!("{path}.{}.Key", i + 1), &format!("duplicate tag key '{k}'"));
            }
        }
    }
}

/// The target of a configuration whose members passed validation; the compiler options'
/// content is checked here (JSON in either quote style, known keys, NVIDIA's required
/// `gpu-code`, `trt-ver`, `cuda-ver`, a `gpu-code` we have kernels for).
pub fn target_of(g: &GreengrassConfiguration) -> Result<Target> {
    let target = match (&g.target_device, &g.target_platform) {
        (Some(d), None) => Target::device(d),
        (None, Some(tp)) => Target::platform(
            tp.os.as_deref().unwrap_or_default(),
            tp.arch.as_deref().unwrap_or_default(),
            tp.accelerator.as_deref(),
            g.compiler_options.as_deref(),
        ),
        _ => Err(kernels::KernelError::Target("specify one of TargetDevice or TargetPlatform".into())),
    };
    target.map_err(|e| {
        let msg = e.to_string();
        let msg = msg.strip_prefix("invalid target: ").unwrap_or(&msg).to_owned();
        ApiError::validation(format!("1 validation error detected: Configuration.Greengrass.CompilerOptions: {msg}"))
    })
}
