//! Fuzzing the request path: arbitrary bytes decoded as a DetectAnomalies request, and
//! arbitrary well-formed requests (sizes, byte counts, shared-memory names, offsets and sizes),
//! through the service's handler on a RUNNING model. Every one is answered (an answer or a
//! status), nothing panics, and the model still serves afterwards.

mod common;

use std::sync::OnceLock;

use agent::proto::{bitmap, AnomalyMaskParams, Bitmap, DetectAnomaliesRequest, SharedMemoryHandle};
use agent::service::Agent;
use proptest::prelude::*;
use prost::Message;
use tonic::Code;

struct Running {
    runtime: tokio::runtime::Runtime,
    agent: Agent,
    shm: String,
}

fn running() -> &'static Running {
    static R: OnceLock<Running> = OnceLock::new();
    R.get_or_init(|| {
        let c = common::components();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let registry = agent::registry::Registry::new(common::options(&[("defects", &c.segmentation)])).unwrap();
        registry.start("defects").unwrap();
        let t = std::time::Instant::now();
        while registry.runner("defects").is_err() {
            assert!(t.elapsed().as_secs() < 10, "{:?}", registry.describe("defects").unwrap().message);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let shm = format!("/edgepack-fuzz-{}", std::process::id());
        // The mapping stays for the whole run; the object is unlinked when the binary exits.
        std::mem::forget(agent::shm::create(&shm, 64 * 64 * 3 + 64).unwrap());
        common::unlink_at_exit(&shm);
        Running { runtime, agent: Agent::new(registry), shm }
    })
}

fn answer(req: DetectAnomaliesRequest) -> Result<(), tonic::Status> {
    let r = running();
    r.runtime.block_on(r.agent.detect(req)).map(|_| ())
}

fn handle() -> impl Strategy<Value = SharedMemoryHandle> {
    let name = prop_oneof![Just(running().shm.clone()), "[a-z/]{0,12}", Just("/".to_string())];
    (name, prop_oneof![any::<u64>(), 0u64..20000], prop_oneof![any::<u64>(), 0u64..200])
        .prop_map(|(name, size, offset)| SharedMemoryHandle { name, size, offset })
}

fn request() -> impl Strategy<Value = DetectAnomaliesRequest> {
    let side = prop_oneof![any::<i32>(), 0i32..80, 60i32..70];
    let data = prop_oneof![
        Just(None),
        (0usize..20000).prop_map(|n| Some(bitmap::Data::ByteData(vec![90u8; n]))),
        handle().prop_map(|h| Some(bitmap::Data::SharedMemoryHandle(h))),
    ];
    let mask = prop_oneof![
        Just(None),
        proptest::option::of(handle()).prop_map(|h| Some(AnomalyMaskParams { shared_memory_handle: h }))
    ];
    let name = prop_oneof![Just("defects".to_string()), "[a-z]{0,8}"];
    (name, side.clone(), side, data, mask).prop_map(|(model_component, width, height, data, anomaly_mask_params)| {
        DetectAnomaliesRequest { model_component, bitmap: Some(Bitmap { width, height, data }), anomaly_mask_params }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_crash_the_agent(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(req) = DetectAnomaliesRequest::decode(bytes.as_slice()) {
            if let Err(s) = answer(req) {
                prop_assert!(matches!(s.code(), Code::InvalidArgument | Code::NotFound), "{s:?}");
            }
        }
    }

    #[test]
    fn arbitrary_requests_are_answered_or_refused_with_a_reason(req in request()) {
        let ok_shape = req.bitmap.as_ref().is_some_and(|b| (64..=4096).contains(&b.width) && (64..=4096).contains(&b.height));
        match answer(req.clone()) {
            Ok(()) => prop_assert!(ok_shape && req.model_component == "defects"),
            Err(s) => {
                prop_assert!(matches!(s.code(), Code::InvalidArgument | Code::NotFound), "{s:?}");
                prop_assert!(!s.message().is_empty());
            }
        }
    }
}

#[test]
fn still_serving_after_fuzzing() {
    let req = DetectAnomaliesRequest {
        model_component: "defects".into(),
        bitmap: Some(Bitmap { width: 64, height: 64, data: Some(bitmap::Data::ByteData(vec![1u8; 64 * 64 * 3])) }),
        anomaly_mask_params: None,
    };
    assert!(answer(req).is_ok());
}
