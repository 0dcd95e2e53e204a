//! The ONNX project's own conformance data for `Conv` and `ConvTranspose` (from the pinned
//! `onnx` wheel, fetched by `ci/fetch-onnx-data.sh`): each case is a one-node `model.onnx`
//! plus `test_data_set_0/{input,output}_*.pb`. This module reads a case into NHWC tensors and
//! [`ConvParams`] (resolving `auto_pad` and `output_shape` as the ONNX spec says, and 1-D
//! convolutions as 2-D ones of height 1), runs it on a kernel set and compares.

use std::path::{Path, PathBuf};

use kernels::{Activation, Bias, ConvKind, ConvParams, Epilogue, ImageMut, ImageRef, KernelSet, Parallelism};
use onnx::proto::{ModelProto, NodeProto, TensorProto};

use crate::error::{read, Error, Result};
use crate::parity::{compare, Parity};
use crate::reference;
use crate::tolerance::gemm_bound;

/// The pinned `onnx` wheel version the data comes from (keep in step with the fetch script).
pub const ONNX_VERSION: &str = "1.17.0";

/// Where the fetch script puts the data: `$EDGEPACK_CACHE/onnx-<version>` (default
/// `<workspace>/.cache`).
pub fn data_dir() -> PathBuf {
    let cache = std::env::var_os("EDGEPACK_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache"));
    cache.join(format!("onnx-{ONNX_VERSION}"))
}

/// One conformance case, ready to run.
#[derive(Debug, Clone)]
pub struct ConvCase {
    /// Directory name (`test_Conv2d_groups`, …).
    pub name: String,
    /// Resolved attributes.
    pub params: ConvParams,
    /// Input dims `[n, h, w, c]` and NHWC values.
    pub input: ([usize; 4], Vec<f32>),
    /// ONNX-layout weights.
    pub weights: Vec<f32>,
    /// Bias, if the node has one.
    pub bias: Option<Vec<f32>>,
    /// Expected output dims `[n, oh, ow, c]` and NHWC values.
    pub expected: ([usize; 4], Vec<f32>),
}

/// Why a case directory is not run: a reason in words (3-D, integer convolution, …).
pub type Excluded = String;

fn tensor(path: &Path) -> Result<TensorProto> {
    onnx::decode_tensor(&read(path)?).map_err(|e| Error::data(path, e))
}

/// NCHW (or NCL) values to NHWC with `h = 1` for 1-D.
fn to_nhwc(case: &str, dims: &[usize], data: &[f32]) -> Result<([usize; 4], Vec<f32>)> {
    let [n, c, h, w] = match *dims {
        [n, c, l] => [n, c, 1, l],
        [n, c, h, w] => [n, c, h, w],
        _ => return Err(Error::case(case, format!("tensor of rank {} is not NCL or NCHW", dims.len()))),
    };
    let mut out = vec![0.0; data.len()];
    for i in 0..n {
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    out[((i * h + y) * w + x) * c + ch] = data[((i * c + ch) * h + y) * w + x];
                }
            }
        }
    }
    Ok(([n, h, w, c], out))
}

/// Reads case directory `dir`: `Ok(Err(reason))` when the case is outside what edgepack runs.
pub fn load(dir: &Path) -> Result<Result<ConvCase, Excluded>> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let model_path = dir.join("model.onnx");
    let model: ModelProto = onnx::decode_model(&read(&model_path)?).map_err(|e| Error::data(&model_path, e))?;
    let graph = model.graph.as_ref().ok_or_else(|| Error::data(&model_path, "model has no graph"))?;
    let node = match graph.node.as_slice() {
        [node] => node,
        nodes => return Err(Error::data(&model_path, format!("expected one node, found {}", nodes.len()))),
    };
    if node.op_type != "Conv" && node.op_type != "ConvTranspose" {
        return Ok(Err(format!("{} (not a float convolution)", node.op_type)));
    }
    // Values by name: initializers, then the test inputs in graph-input order.
    let set_dir = dir.join("test_data_set_0");
    let mut values: Vec<(String, TensorProto)> =
        graph.initializer.iter().map(|t| (t.name.clone(), t.clone())).collect();
    let free: Vec<&str> = graph
        .input
        .iter()
        .map(|v| v.name.as_str())
        .filter(|n| !graph.initializer.iter().any(|t| t.name == *n))
        .collect();
    for (i, input_name) in free.iter().enumerate() {
        values.push((input_name.to_string(), tensor(&set_dir.join(format!("input_{i}.pb")))?));
    }
    let get = |i: usize| -> Result<Option<onnx::tensor::Tensor<f32>>> {
        let Some(value) = node.input.get(i).filter(|n| !n.is_empty()) else { return Ok(None) };
        let t = values
            .iter()
            .find(|(n, _)| n == value)
            .ok_or_else(|| Error::case(&name, format!("no value for `{value}`")))?;
        onnx::tensor::to_f32(&t.1).map(Some).map_err(|e| Error::case(&name, e.to_string()))
    };
    let x = get(0)?.ok_or_else(|| Error::case(&name, "no input"))?;
    let w = get(1)?.ok_or_else(|| Error::case(&name, "no weights"))?;
    if x.dims.len() == 5 {
        return Ok(Err("3-D convolution (edgepack runs 1-D and 2-D)".into()));
    }
    let bias = get(2)?.map(|b| b.data);
    let out_path = set_dir.join("output_0.pb");
    let out = onnx::tensor::to_f32(&tensor(&out_path)?).map_err(|e| Error::data(&out_path, e))?;
    let params = conv_params(node, &x.dims, &w.dims).map_err(|reason| Error::case(&name, reason.to_string()))?;
    Ok(Ok(ConvCase {
        params,
        input: to_nhwc(&name, &x.dims, &x.data)?,
        weights: w.data,
        bias,
        expected: to_nhwc(&name, &out.dims, &out.data)?,
        name,
    }))
}

/// Why a node's attributes make no convolution edgepack runs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AttributeError {
    /// An attribute of the wrong type.
    #[error(transparent)]
    Onnx(#[from] onnx::OnnxError),
    /// Input and weight ranks that make no 1-D or 2-D convolution.
    #[error("input of rank {input} and weights of rank {weights}: not a 1-D or 2-D convolution")]
    Rank {
        /// Input rank.
        input: usize,
        /// Weight rank.
        weights: usize,
    },
    /// An attribute whose value does not fit.
    #[error("attribute `{attr}` = {value:?} does not fit {rank} spatial axes")]
    Value {
        /// The attribute.
        attr: String,
        /// Its value.
        value: Vec<i64>,
        /// The spatial rank.
        rank: usize,
    },
    /// An `output_shape` that would need negative leading padding.
    #[error("output_shape needs negative leading padding on axis {0}")]
    NegativePadding(usize),
    /// Channels that do not match the weights and groups.
    #[error("input has {c} channels, weights {w:?} with group {groups} expect {c_in}")]
    Channels {
        /// The input's channels.
        c: usize,
        /// The weights' dims.
        w: Vec<usize>,
        /// Groups.
        groups: usize,
        /// Channels the weights expect.
        c_in: usize,
    },
}

fn ints(node: &NodeProto, attr: &str, rank: usize, default: i64) -> Result<Vec<usize>, AttributeError> {
    let v = onnx::attr::ints(node, attr)?.unwrap_or_else(|| vec![default; rank]);
    if v.len() != rank || v.iter().any(|&x| x < 0) {
        return Err(AttributeError::Value { attr: attr.into(), value: v, rank });
    }
    Ok(v.into_iter().map(|x| x as usize).collect())
}

/// The attributes of a `Conv` / `ConvTranspose` node for input dims `x` (NCHW or NCL) and
/// weight dims `w`, with `auto_pad` and `output_shape` resolved into explicit pads, per the
/// ONNX operator documentation; 1-D becomes 2-D with a height-1 kernel.
pub fn conv_params(node: &NodeProto, x: &[usize], w: &[usize]) -> Result<ConvParams, AttributeError> {
    let rank_error = AttributeError::Rank { input: x.len(), weights: w.len() };
    let rank = x.len().checked_sub(2).filter(|r| (1..=2).contains(r)).ok_or(rank_error.clone())?;
    if w.len() != x.len() {
        return Err(rank_error);
    }
    let transposed = node.op_type == "ConvTranspose";
    let groups = onnx::attr::int(node, "group")?.unwrap_or(1);
    let groups = usize::try_from(groups).ok().filter(|&g| g > 0).ok_or(AttributeError::Value {
        attr: "group".into(),
        value: vec![groups],
        rank,
    })?;
    let kernel = ints(node, "kernel_shape", rank, 0)
        .ok()
        .filter(|k| k.iter().all(|&v| v > 0))
        .unwrap_or_else(|| w[2..].to_vec());
    let strides = ints(node, "strides", rank, 1)?;
    let dilations = ints(node, "dilations", rank, 1)?;
    let mut pads = ints(node, "pads", 2 * rank, 0)?;
    let mut output_padding = ints(node, "output_padding", rank, 0)?;
    let auto_pad = onnx::attr::string(node, "auto_pad")?.unwrap_or_else(|| "NOTSET".into());
    let input = &x[2..];
    let output_shape = onnx::attr::ints(node, "output_shape")?;
    for axis in 0..rank {
        let span = dilations[axis] * (kernel[axis] - 1) + 1;
        let (s, i) = (strides[axis], input[axis]);
        let total = if transposed {
            let target = match &output_shape {
                Some(o) => Some(*o.get(axis).ok_or_else(|| AttributeError::Value {
                    attr: "output_shape".into(),
                    value: o.clone(),
                    rank,
                })? as usize),
                None if auto_pad.starts_with("SAME") => Some(i * s),
                None => None,
            };
            target.map(|t| (s * (i - 1) + output_padding[axis] + span) as isize - t as isize)
        } else if auto_pad.starts_with("SAME") {
            let out = i.div_ceil(s);
            Some((((out - 1) * s + span) as isize - i as isize).max(0))
        } else {
            None
        };
        let Some(t) = total else {
            if auto_pad == "VALID" {
                pads[axis] = 0;
                pads[axis + rank] = 0;
            }
            continue;
        };
        // Where the odd unit goes: the end for SAME_UPPER; the beginning for SAME_LOWER and
        // (ConvTranspose's rule) for an explicit output_shape.
        let (begin, end) = if auto_pad == "SAME_UPPER" {
            (t.div_euclid(2), t - t.div_euclid(2))
        } else {
            (t - t.div_euclid(2), t.div_euclid(2))
        };
        if begin < 0 {
            return Err(AttributeError::NegativePadding(axis));
        }
        pads[axis] = begin as usize;
        pads[axis + rank] = end.max(0) as usize;
        // A negative end pad lengthens the output: that is output_padding.
        output_padding[axis] += (-end).max(0) as usize;
    }
    let two = |v: &[usize], fill: usize| if rank == 1 { [fill, v[0]] } else { [v[0], v[1]] };
    let pads4 = if rank == 1 { [0, pads[0], 0, pads[1]] } else { [pads[0], pads[1], pads[2], pads[3]] };
    let (c_in, c_out) = if transposed { (w[0], w[1] * groups) } else { (w[1] * groups, w[0]) };
    if c_in != x[1] {
        return Err(AttributeError::Channels { c: x[1], w: w.to_vec(), groups, c_in });
    }
    Ok(ConvParams {
        kind: if transposed {
            ConvKind::Transposed { output_padding: two(&output_padding, 0) }
        } else {
            ConvKind::Forward
        },
        c_in,
        c_out,
        kernel: two(&kernel, 1),
        strides: two(&strides, 1),
        dilations: two(&dilations, 1),
        pads: pads4,
        groups,
    })
}

/// Runs a case on `set` and compares with the data's expected output: each element within
/// twice the tolerance model's bound (the expected values are themselves an f32
/// computation), and edgepack's float64 reference within one bound of the expected values
/// (which checks the reference against ONNX too).
pub fn run(set: &dyn KernelSet, case: &ConvCase) -> Result<Parity> {
    let (in_dims, x) = (&case.input.0, &case.input.1);
    let (out_dims, want) = (case.expected.0, &case.expected.1);
    let packed = set.pack_conv(&case.params, &case.weights)?;
    let mut out = vec![f32::NAN; want.len()];
    let input = ImageRef::new(x, *in_dims)?;
    let epi = Epilogue { bias: case.bias.as_deref().map_or(Bias::None, Bias::PerCol), ..Epilogue::none() };
    set.conv2d(input, &packed, ImageMut::new(&mut out, out_dims)?, &epi, Parallelism::Threads)?;
    let r = reference::conv(&case.params, &input, &case.weights, case.bias.as_deref(), None, Activation::Identity);
    for (i, ((&y, &e), &rv)) in out.iter().zip(want).zip(&r.value).enumerate() {
        let bound = gemm_bound(r.k, r.abs_sum[i], r.pre[i], rv, Activation::Identity);
        if (rv - e as f64).abs() > bound {
            return Err(Error::mismatch(
                &case.name,
                format!("float64 reference {rv} vs ONNX {e} at {i} (bound {bound:e})"),
            ));
        }
        let err = (y as f64 - e as f64).abs();
        if err.is_nan() || err > 2.0 * bound {
            return Err(Error::mismatch(
                &case.name,
                format!("{} gives {y}, ONNX expects {e} at {i} (bound {:e})", set.info().name, 2.0 * bound),
            ));
        }
    }
    Ok(compare(&r, |i, j| out[i * r.n + j]))
}
