//! Target parsing: every documented configuration, every error case, and kernel-set selection.

use kernels::vocabulary::*;
use kernels::{kernel_set, select, Accelerator, Arch, CpuIsa, KernelError, KernelSetId, Target};

fn platform(arch: &str, acc: Option<&str>, opts: Option<&str>) -> Result<Target, KernelError> {
    Target::platform("LINUX", arch, acc, opts)
}

#[test]
fn documented_configurations() {
    // (configuration JSON, arch, CPU ISA, heavy-op kernel set, GPU sm)
    let cases: &[(&str, Arch, CpuIsa, KernelSetId, Option<u32>)] = &[
        (r#"{"TargetDevice": "jetson_xavier"}"#, Arch::Arm64, CpuIsa::Neon, KernelSetId::Cuda, Some(72)),
        (
            r#"{"TargetPlatform": {"Os": "LINUX", "Arch": "X86_64"}, "CompilerOptions": "{\"mcpu\": \"core-avx2\"}"}"#,
            Arch::X86_64,
            CpuIsa::Avx2Fma,
            KernelSetId::Avx2,
            None,
        ),
        (
            r#"{"TargetPlatform": {"Os": "LINUX", "Arch": "X86_64"}, "CompilerOptions": "{'mcpu': 'skylake-avx512'}"}"#,
            Arch::X86_64,
            CpuIsa::Avx512F,
            KernelSetId::Avx512,
            None,
        ),
        (
            r#"{"TargetPlatform": {"Os": "LINUX", "Arch": "X86_64"}}"#,
            Arch::X86_64,
            CpuIsa::Avx2Fma,
            KernelSetId::Avx2,
            None,
        ),
        (
            r#"{"TargetPlatform": {"Os": "LINUX", "Arch": "ARM64"}, "CompilerOptions": "{'mattr': ['+neon', '+vfpv4']}"}"#,
            Arch::Arm64,
            CpuIsa::Neon,
            KernelSetId::Neon,
            None,
        ),
        (
            r#"{"TargetPlatform": {"Os": "LINUX", "Arch": "X86_64", "Accelerator": "NVIDIA"},
                "CompilerOptions": "{'gpu-code': 'sm_75', 'trt-ver': '7.1.3', 'cuda-ver': '10.2'}"}"#,
            Arch::X86_64,
            CpuIsa::Avx2Fma,
            KernelSetId::Cuda,
            Some(75),
        ),
        (
            r#"{"TargetPlatform": {"Os": "LINUX", "Arch": "X86_64", "Accelerator": "NVIDIA"},
                "CompilerOptions": "{\"gpu-code\": \"sm_80\", \"trt-ver\": \"8.2.1\", \"cuda-ver\": \"11.4\"}"}"#,
            Arch::X86_64,
            CpuIsa::Avx2Fma,
            KernelSetId::Cuda,
            Some(80),
        ),
        (
            r#"{"TargetPlatform": {"Os": "LINUX", "Arch": "ARM64", "Accelerator": "NVIDIA"},
                "CompilerOptions": "{'gpu-code': 'sm_87', 'trt-ver': '8.5.2', 'cuda-ver': '11.4', 'mcpu': 'cortex-a78ae'}"}"#,
            Arch::Arm64,
            CpuIsa::Neon,
            KernelSetId::Cuda,
            Some(87),
        ),
    ];
    for (json, arch, isa, set, sm) in cases {
        let t = Target::from_configuration(json).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!((t.arch, t.cpu_isa, t.kernel_set()), (*arch, *isa, *set), "{json}");
        let got_sm = match &t.accelerator {
            Accelerator::Nvidia(o) => Some(o.sm),
            Accelerator::Cpu => None,
        };
        assert_eq!(got_sm, *sm, "{json}");
    }
}

#[test]
fn every_listed_cpu_maps_to_its_class() {
    for (list, isa) in
        [(X86_AVX512_CPUS, CpuIsa::Avx512F), (X86_AVX2_CPUS, CpuIsa::Avx2Fma), (X86_PORTABLE_CPUS, CpuIsa::Portable)]
    {
        for cpu in list {
            let t = platform("X86_64", None, Some(&format!("{{'mcpu': '{cpu}'}}"))).unwrap();
            assert_eq!(t.cpu_isa, isa, "{cpu}");
            assert_eq!(t.mcpu, *cpu);
        }
    }
    for cpu in ARM64_CPUS {
        assert_eq!(
            platform("ARM64", None, Some(&format!("{{\"mcpu\": \"{cpu}\"}}"))).unwrap().cpu_isa,
            CpuIsa::Neon,
            "{cpu}"
        );
    }
    for code in GPU_CODES {
        let opts = format!("{{'gpu-code': '{code}', 'trt-ver': '8.2.1', 'cuda-ver': '10.2'}}");
        assert_eq!(platform("X86_64", Some("NVIDIA"), Some(&opts)).unwrap().kernel_set(), KernelSetId::Cuda, "{code}");
    }
}

#[test]
fn mattr_adjusts_the_instruction_set() {
    let cases = [
        ("{'mcpu': 'core-avx2', 'mattr': ['+avx512f']}", CpuIsa::Avx512F),
        ("{'mattr': '+avx512f,+avx512bw'}", CpuIsa::Avx512F),
        ("{'mcpu': 'x86-64', 'mattr': ['+avx2', '+fma']}", CpuIsa::Avx2Fma),
        ("{'mcpu': 'x86-64', 'mattr': ['+avx2']}", CpuIsa::Portable),
        ("{'mcpu': 'skylake-avx512', 'mattr': ['-avx512f']}", CpuIsa::Avx2Fma),
        ("{'mcpu': 'haswell', 'mattr': ['-fma']}", CpuIsa::Portable),
        ("{'mcpu': 'icelake-server', 'mattr': ['-avx2']}", CpuIsa::Portable),
        ("{}", CpuIsa::Avx2Fma),
    ];
    for (opts, isa) in cases {
        assert_eq!(
            platform("X86_64", None, Some(opts)).unwrap_or_else(|e| panic!("{opts}: {e}")).cpu_isa,
            isa,
            "{opts}"
        );
    }
}

#[test]
fn invalid_targets_are_errors_naming_the_problem() {
    let nv = Some("NVIDIA");
    let cases: Vec<(Result<Target, KernelError>, &str)> = vec![
        (Target::device("jetson_nano"), "jetson_xavier"),
        (Target::platform("WINDOWS", "X86_64", None, None), "LINUX"),
        (platform("ARM_64", None, None), "ARM64"),
        (platform("X86_64", Some("GPU"), None), "NVIDIA"),
        (platform("X86_64", nv, None), "missing: gpu-code, trt-ver, cuda-ver"),
        (platform("X86_64", nv, Some("{'gpu-code': 'sm_75', 'trt-ver': '7.1.3'}")), "missing: cuda-ver"),
        (platform("X86_64", nv, Some("{'gpu-code': 'sm_61', 'trt-ver': '7.1.3', 'cuda-ver': '10.2'}")), "sm_72"),
        (platform("X86_64", nv, Some("{'gpu-code': 'sm_75', 'trt-ver': '7.1', 'cuda-ver': '10.2'}")), "x.y.z"),
        (platform("X86_64", nv, Some("{'gpu-code': 'sm_75', 'trt-ver': '7.1.3', 'cuda-ver': '10'}")), "x.y"),
        (platform("X86_64", nv, Some("{'gpu-code': 75, 'trt-ver': '7.1.3', 'cuda-ver': '10.2'}")), "must be a string"),
        (platform("X86_64", None, Some("{'gpu-code': 'sm_75'}")), "needs Accelerator NVIDIA"),
        (platform("X86_64", None, Some("{'mcpu': 'pentium9'}")), "skylake-avx512"),
        (platform("X86_64", None, Some("{'mcpu': 'cortex-a72'}")), "ARM64 CPU"),
        (platform("ARM64", None, Some("{'mcpu': 'skylake-avx512'}")), "x86_64 CPU"),
        (platform("X86_64", None, Some("{'mattr': ['+neon']}")), "ARM64 feature"),
        (platform("ARM64", None, Some("{'mattr': ['+avx2']}")), "not an ARM64 feature"),
        (platform("ARM64", None, Some("{'mattr': ['-neon']}")), "every ARM64 CPU has NEON"),
        (platform("X86_64", None, Some("{'mattr': ['+avx2', '-avx2']}")), "both enables and disables"),
        (platform("X86_64", None, Some("{'mattr': ['+avx512f', '-fma']}")), "contradictory"),
        (platform("X86_64", None, Some("{'mattr': ['avx2']}")), "must start with + or -"),
        (platform("X86_64", None, Some("{'mattr': 7}")), "mattr must be a list"),
        (platform("X86_64", None, Some("mcpu=core-avx2")), "not a JSON object"),
        (platform("X86_64", None, Some("['core-avx2']")), "must be a JSON object"),
        (platform("X86_64", None, Some("{'mcpu': 3}")), "must be a string"),
        (platform("X86_64", None, Some("{'march': 'x'}")), "supported: mcpu, mattr"),
        (
            Target::from_configuration(
                r#"{"TargetDevice": "jetson_xavier", "TargetPlatform": {"Os": "LINUX", "Arch": "ARM64"}}"#,
            ),
            "mutually exclusive",
        ),
        (Target::from_configuration(r#"{"CompilerOptions": "{}"}"#), "is required"),
        (
            Target::from_configuration(r#"{"TargetDevice": "jetson_xavier", "CompilerOptions": "{}"}"#),
            "cannot be given with TargetDevice",
        ),
        (Target::from_configuration(r#"{"TargetPlatform": {"Arch": "X86_64"}}"#), "Os is required"),
        (Target::from_configuration(r#"{"TargetPlatform": {"Os": "LINUX"}}"#), "Arch is required"),
        (Target::from_configuration(r#"{"TargetPlatform": "X86_64"}"#), "must be an object"),
        (Target::from_configuration("[1"), "not valid JSON"),
    ];
    for (i, (result, needle)) in cases.into_iter().enumerate() {
        match result {
            Ok(t) => panic!("case {i}: accepted as {t}, expected an error mentioning `{needle}`"),
            Err(e @ KernelError::Target(_)) => {
                let msg = e.to_string();
                assert!(msg.contains(needle), "case {i}: error `{msg}` does not mention `{needle}`");
            }
            Err(other) => panic!("case {i}: wrong error kind {other:?}"),
        }
    }
}

#[test]
fn selection_refuses_sets_this_machine_cannot_run() {
    let host = Target::host();
    let best = select(&host).expect("the host's own best set always runs");
    assert_eq!(best.info().id, host.kernel_set());
    for id in KernelSetId::ALL {
        match kernel_set(id) {
            Ok(set) => {
                assert_eq!(set.info().id, id);
                assert_eq!(Some((set.info().mr, set.info().nr)), id.geometry(), "{id}");
            }
            Err(KernelError::Unavailable { set, reason }) => {
                assert_eq!(set, id.name());
                assert!(!reason.is_empty());
                // A set refused here must not be the host's own best choice.
                assert_ne!(id, host.kernel_set(), "host's best set {id} refused: {reason}");
            }
            Err(other) => panic!("{id}: unexpected error {other:?}"),
        }
    }
    // An AVX-512 package target can always be described; running it depends on the host.
    let t = platform("X86_64", None, Some("{'mcpu': 'sapphirerapids'}")).unwrap();
    assert_eq!(select(&t).is_ok(), host.cpu_isa == CpuIsa::Avx512F);
    assert!(select(&Target::device("jetson_xavier").unwrap()).is_err(), "no CUDA set in this build");
}
