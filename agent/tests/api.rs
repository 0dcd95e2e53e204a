//! The edge agent API end to end over its Unix socket, on components a real packaging job
//! published: every call, every status code of the spec, byte data and shared memory, the
//! answers against the same computation done in-process, and bad input of every kind.

mod common;

use std::time::Duration;

use agent::proto::{
    bitmap, AnomalyMaskParams, Bitmap, DescribeModelRequest, DetectAnomaliesRequest, ListModelsRequest, ModelStatus,
    SharedMemoryHandle, StartModelRequest, StopModelRequest,
};
use common::{components, image, options, serve, settle, start_running, SEG_H, SEG_W};
use tonic::Code;

fn bytes_request(name: &str, w: usize, h: usize, pixels: Vec<u8>) -> DetectAnomaliesRequest {
    DetectAnomaliesRequest {
        model_component: name.into(),
        bitmap: Some(Bitmap { width: w as i32, height: h as i32, data: Some(bitmap::Data::ByteData(pixels)) }),
        anomaly_mask_params: None,
    }
}

fn shm_handle(name: &str, size: usize, offset: usize) -> SharedMemoryHandle {
    SharedMemoryHandle { name: name.into(), size: size as u64, offset: offset as u64 }
}

/// What the component's plan answers for `pixels`, computed in-process.
fn in_process(dir: &std::path::Path, w: usize, h: usize, pixels: &[u8]) -> agent::answer::Answer {
    let c = agent::components::Component::load(dir, None).unwrap();
    let plan = model::plan::Plan::from_bytes(&std::fs::read(dir.join("model.eppl")).unwrap()).unwrap();
    let names: Vec<String> = plan.outputs.iter().map(|&v| plan.values[v].name.clone()).collect();
    let x = model::image::to_input(model::image::Rgb8::new(w, h, pixels).unwrap(), &c.contract);
    let outs = plan.session(1).unwrap().run(&[x]).unwrap();
    agent::answer::read(&c.contract, &names, &outs, w, h).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_and_answers_match_in_process() {
    let c = components();
    let served = serve(options(&[("defects", &c.segmentation), ("scores", &c.classification)])).await;
    let mut client = served.client().await;

    let models = client.list_models(ListModelsRequest {}).await.unwrap().into_inner().models;
    let names: Vec<&str> = models.iter().map(|m| m.model_component.as_str()).collect();
    assert_eq!(names, ["defects", "scores"]);
    assert!(models.iter().all(|m| m.status == ModelStatus::Stopped as i32));
    assert!(models[0].lookout_vision_model_arn.contains("factory-defects"), "{}", models[0].lookout_vision_model_arn);
    assert!(models[0].status_message.contains("device parity not checked"), "{}", models[0].status_message);

    // Not RUNNING yet.
    let e = client.detect_anomalies(bytes_request("defects", 64, 64, image(64, 64, 1))).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let e = client.stop_model(StopModelRequest { model_component: "defects".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");

    start_running(&mut client, "defects").await;
    let e = client.start_model(StartModelRequest { model_component: "defects".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");

    // Segmentation, at the model's size and at other sizes (resized both ways).
    for (w, h, seed) in [(SEG_W, SEG_H, 2), (640, 480, 3), (64, 200, 4)] {
        let px = image(w, h, seed);
        let got = client.detect_anomalies(bytes_request("defects", w, h, px.clone())).await.unwrap().into_inner();
        let r = got.detect_anomaly_result.unwrap();
        let want = in_process(&c.segmentation, w, h, &px);
        assert_eq!(r.is_anomalous, want.is_anomalous);
        assert_eq!(r.confidence, want.confidence);
        let mask = r.anomaly_mask.unwrap();
        assert_eq!((mask.width, mask.height), (w as i32, h as i32));
        assert_eq!(mask.data, Some(bitmap::Data::ByteData(want.mask.clone().unwrap())));
        let areas: Vec<(String, f32, String)> = r
            .anomalies
            .iter()
            .map(|a| {
                let p = a.pixel_anomaly.as_ref().unwrap();
                (a.name.clone(), p.total_percentage_area, p.hex_color.clone())
            })
            .collect();
        assert_eq!(areas, want.anomalies);
        assert!((0.0..=1.0).contains(&r.confidence));
    }

    // Classification.
    start_running(&mut client, "scores").await;
    for seed in 0..4 {
        let px = image(100, 80, seed);
        let r = client.detect_anomalies(bytes_request("scores", 100, 80, px.clone())).await.unwrap().into_inner();
        let r = r.detect_anomaly_result.unwrap();
        let want = in_process(&c.classification, 100, 80, &px);
        assert_eq!((r.is_anomalous, r.confidence), (want.is_anomalous, want.confidence));
        assert!(r.anomaly_mask.is_none() && r.anomalies.is_empty());
    }

    // Stop: STOPPING, then STOPPED; calls are refused again.
    let s = client.stop_model(StopModelRequest { model_component: "defects".into() }).await.unwrap().into_inner();
    assert_eq!(s.status, ModelStatus::Stopping as i32);
    assert_eq!(settle(&mut client, "defects").await.0, ModelStatus::Stopped);
    let e = client.detect_anomalies(bytes_request("defects", 64, 64, image(64, 64, 1))).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    // And it starts again.
    start_running(&mut client, "defects").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_components_are_not_found() {
    let c = components();
    let served = serve(options(&[("defects", &c.segmentation)])).await;
    let mut client = served.client().await;
    let e = client.describe_model(DescribeModelRequest { model_component: "nope".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("nope"), "{}", e.message());
    let e = client.start_model(StartModelRequest { model_component: "nope".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = client.stop_model(StopModelRequest { model_component: "nope".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = client.detect_anomalies(bytes_request("nope", 64, 64, image(64, 64, 1))).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = client.detect_anomalies(bytes_request("", 64, 64, image(64, 64, 1))).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_memory_in_and_out() {
    let c = components();
    let served = serve(options(&[("defects", &c.segmentation)])).await;
    let mut client = served.client().await;
    start_running(&mut client, "defects").await;
    let (w, h) = (300, 200);
    let px = image(w, h, 7);
    let n = w * h * 3;
    let tag = std::process::id();
    let (input, output) = (format!("/edgepack-test-in-{tag}"), format!("edgepack-test-out-{tag}"));
    // The image at offset 100 of a larger object; the mask at offset 8 of another.
    let mut src = agent::shm::create(&input, n + 300).unwrap();
    src.write(100, &px);
    let dst = agent::shm::create(&output, n + 8).unwrap();
    let req = DetectAnomaliesRequest {
        model_component: "defects".into(),
        bitmap: Some(Bitmap {
            width: w as i32,
            height: h as i32,
            data: Some(bitmap::Data::SharedMemoryHandle(shm_handle(&input, n, 100))),
        }),
        anomaly_mask_params: Some(AnomalyMaskParams { shared_memory_handle: Some(shm_handle(&output, n, 8)) }),
    };
    let r = client.detect_anomalies(req).await.unwrap().into_inner().detect_anomaly_result.unwrap();
    let want = in_process(&c.segmentation, w, h, &px);
    assert_eq!(r.confidence, want.confidence);
    let mask = r.anomaly_mask.unwrap();
    assert_eq!(mask.data, Some(bitmap::Data::SharedMemoryHandle(shm_handle(&output, n, 8))));
    assert_eq!(dst.read(8, n), want.mask.unwrap());
    assert_eq!(dst.read(0, 8), vec![0u8; 8], "nothing written before the offset");
    agent::shm::unlink(&input);
    agent::shm::unlink(&output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bitmaps_are_invalid_arguments_and_the_agent_keeps_serving() {
    let c = components();
    let served = serve(options(&[("defects", &c.segmentation)])).await;
    let mut client = served.client().await;
    start_running(&mut client, "defects").await;
    let tag = std::process::id();
    let small = format!("/edgepack-test-small-{tag}");
    let _small_map = agent::shm::create(&small, 64 * 64 * 3).unwrap();
    let with = |w: i32, h: i32, data: Option<bitmap::Data>| DetectAnomaliesRequest {
        model_component: "defects".into(),
        bitmap: Some(Bitmap { width: w, height: h, data }),
        anomaly_mask_params: None,
    };
    let bytes = |n: usize| Some(bitmap::Data::ByteData(vec![7u8; n]));
    let shm =
        |name: &str, size: usize, offset: usize| Some(bitmap::Data::SharedMemoryHandle(shm_handle(name, size, offset)));
    let ok_px = 64 * 64 * 3;
    let cases: Vec<(&str, DetectAnomaliesRequest, &str)> = vec![
        ("wrong byte count", with(64, 64, bytes(ok_px - 1)), "has 12287 bytes"),
        ("0x0", with(0, 0, bytes(0)), "width 0"),
        ("5000x5000", with(5000, 5000, bytes(3)), "width 5000"),
        ("63 high", with(64, 63, bytes(64 * 63 * 3)), "height 63"),
        ("negative", with(-64, 64, bytes(3)), "width -64"),
        ("no data", with(64, 64, None), "neither byte_data"),
        (
            "no bitmap",
            DetectAnomaliesRequest { model_component: "defects".into(), ..Default::default() },
            "bitmap is missing",
        ),
        ("no such shm", with(64, 64, shm("/edgepack-test-none", ok_px, 0)), "No such file"),
        ("bad shm name", with(64, 64, shm("a/b", ok_px, 0)), "not a POSIX shm_open name"),
        ("offset past end", with(64, 64, shm(&small, ok_px, 10)), "past the end"),
        ("size too small", with(64, 64, shm(&small, ok_px - 3, 0)), "too small"),
        ("offset overflow", with(64, 64, shm(&small, ok_px, usize::MAX)), "overflows"),
        (
            "mask buffer too small",
            DetectAnomaliesRequest {
                anomaly_mask_params: Some(AnomalyMaskParams { shared_memory_handle: Some(shm_handle(&small, 100, 0)) }),
                ..with(128, 128, bytes(128 * 128 * 3))
            },
            "size 100 is too small",
        ),
        (
            "mask range past the object",
            DetectAnomaliesRequest {
                anomaly_mask_params: Some(AnomalyMaskParams {
                    shared_memory_handle: Some(shm_handle(&small, 128 * 128 * 3, 0)),
                }),
                ..with(128, 128, bytes(128 * 128 * 3))
            },
            "past the end",
        ),
        (
            "mask params without handle",
            DetectAnomaliesRequest {
                anomaly_mask_params: Some(AnomalyMaskParams { shared_memory_handle: None }),
                ..with(64, 64, bytes(ok_px))
            },
            "no shared_memory_handle",
        ),
    ];
    for (what, req, says) in cases {
        let e = client.detect_anomalies(req).await.expect_err(what);
        assert_eq!(e.code(), Code::InvalidArgument, "{what}: {e:?}");
        assert!(e.message().contains(says), "{what}: `{}` should say `{says}`", e.message());
    }
    // Still serving.
    let r = client.detect_anomalies(bytes_request("defects", 64, 64, image(64, 64, 9))).await.unwrap();
    assert!(r.into_inner().detect_anomaly_result.is_some());
    // The largest image is accepted.
    let (w, h) = (4096, 4096);
    let r = client.detect_anomalies(bytes_request("defects", w, h, vec![128u8; w * h * 3])).await.unwrap().into_inner();
    let mask = r.detect_anomaly_result.unwrap().anomaly_mask.unwrap();
    assert_eq!((mask.width, mask.height), (4096, 4096));
    agent::shm::unlink(&small);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_is_resource_exhausted_and_stop_drains() {
    let c = components();
    // One worker, one waiting call.
    let served =
        serve(agent::registry::Options { threads: 1, queue: 1, ..options(&[("defects", &c.segmentation)]) }).await;
    let mut client = served.client().await;
    start_running(&mut client, "defects").await;
    // Hold the only slot: the worker takes the first call and waits for the slot; the second
    // call waits in the queue; the third is refused.
    let slot = served.registry.budget().acquire();
    let call = |seed| {
        let mut client = client.clone();
        tokio::spawn(
            async move { client.detect_anomalies(bytes_request("defects", 64, 64, image(64, 64, seed))).await },
        )
    };
    let first = call(1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = call(2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let e = client.detect_anomalies(bytes_request("defects", 64, 64, image(64, 64, 3))).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("cannot keep up"), "{}", e.message());
    // Stop while two calls are accepted: STOPPING, both are answered, then STOPPED.
    let s = client.stop_model(StopModelRequest { model_component: "defects".into() }).await.unwrap().into_inner();
    assert_eq!(s.status, ModelStatus::Stopping as i32);
    let e = client.detect_anomalies(bytes_request("defects", 64, 64, image(64, 64, 4))).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let e = client.start_model(StartModelRequest { model_component: "defects".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "STOPPING cannot start: {e:?}");
    drop(slot);
    assert!(first.await.unwrap().is_ok());
    assert!(second.await.unwrap().is_ok());
    assert_eq!(settle(&mut client, "defects").await.0, ModelStatus::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_mid_call_costs_nothing() {
    let c = components();
    let served =
        serve(agent::registry::Options { threads: 1, queue: 2, ..options(&[("defects", &c.segmentation)]) }).await;
    let mut client = served.client().await;
    start_running(&mut client, "defects").await;
    let slot = served.registry.budget().acquire();
    // Two calls that give up (deadline) while they wait.
    for seed in 0..2 {
        let mut req = tonic::Request::new(bytes_request("defects", 64, 64, image(64, 64, seed)));
        req.set_timeout(Duration::from_millis(150));
        let e = client.detect_anomalies(req).await.unwrap_err();
        assert!(matches!(e.code(), Code::DeadlineExceeded | Code::Cancelled), "{e:?}");
    }
    drop(slot);
    // The agent answers the next call (the abandoned ones were dropped or answered to nobody).
    let r = client.detect_anomalies(bytes_request("defects", 64, 64, image(64, 64, 5))).await;
    assert!(r.is_ok(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_failures() {
    let c = components();
    let dir = tempfile::tempdir().unwrap();
    // A plan changed after packaging.
    let damaged = dir.path().join("damaged");
    common::copy_component(&c.segmentation, &damaged);
    let mut plan = std::fs::read(damaged.join("model.eppl")).unwrap();
    let last = plan.len() - 1;
    plan[last] ^= 1;
    std::fs::write(damaged.join("model.eppl"), plan).unwrap();
    let served = serve(options(&[("damaged", &damaged), ("neon", &c.neon), ("defects", &c.segmentation)])).await;
    let mut client = served.client().await;

    client.start_model(StartModelRequest { model_component: "damaged".into() }).await.unwrap();
    let (status, message) = settle(&mut client, "damaged").await;
    assert_eq!(status, ModelStatus::Failed);
    assert!(message.contains("digest mismatch") && message.contains("model.eppl"), "{message}");

    if kernels::kernel_set(kernels::KernelSetId::Neon).is_err() {
        client.start_model(StartModelRequest { model_component: "neon".into() }).await.unwrap();
        let (status, message) = settle(&mut client, "neon").await;
        assert_eq!(status, ModelStatus::Failed);
        assert!(message.contains("kernel set `neon`") && message.contains("cannot run"), "{message}");
    } else {
        eprintln!("skipped: this host runs NEON, so the NEON component starts (checked under qemu-aarch64 only for the other sets)");
    }

    // FAILED may start again (and fails again, with the same reason).
    client.start_model(StartModelRequest { model_component: "damaged".into() }).await.unwrap();
    assert_eq!(settle(&mut client, "damaged").await.0, ModelStatus::Failed);

    // Memory: a limit below what the model needs.
    drop(client);
    drop(served);
    let served =
        serve(agent::registry::Options { memory_limit: Some(1000), ..options(&[("defects", &c.segmentation)]) }).await;
    let mut client = served.client().await;
    let e = client.start_model(StartModelRequest { model_component: "defects".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("MiB is available"), "{}", e.message());
    assert_eq!(settle(&mut client, "defects").await.0, ModelStatus::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_run_in_parallel_and_all_answer() {
    let c = components();
    let served =
        serve(agent::registry::Options { threads: 2, queue: 64, ..options(&[("defects", &c.segmentation)]) }).await;
    let mut client = served.client().await;
    start_running(&mut client, "defects").await;
    let want = in_process(&c.segmentation, 256, 256, &image(256, 256, 11));
    let mut calls = Vec::new();
    for _ in 0..8 {
        let mut client = served.client().await;
        calls.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..4 {
                let r = client.detect_anomalies(bytes_request("defects", 256, 256, image(256, 256, 11))).await.unwrap();
                got.push(r.into_inner().detect_anomaly_result.unwrap().confidence);
            }
            got
        }));
    }
    for c in calls {
        assert!(c.await.unwrap().iter().all(|&v| v == want.confidence));
    }
    // No model-wide lock: the two workers ran calls at the same time.
    assert_eq!(served.registry.runner("defects").unwrap().peak_concurrency(), 2);
}
