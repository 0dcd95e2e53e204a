//! `NonMaxSuppression`: greedy selection per batch and class, in descending score order
//! (ties to the lower box index), suppressing boxes whose IoU with a selected one exceeds
//! the threshold, as ONNX Runtime does. Its output length depends on the data.

use super::{Arg, At};
use crate::error::Result;
use crate::tensor::{DType, Tensor};

/// Corners `(y1, x1, y2, x2)` with y1 ≤ y2, x1 ≤ x2.
fn corners(b: &[f64], center: bool) -> [f64; 4] {
    if center {
        let (xc, yc, w, h) = (b[0], b[1], b[2], b[3]);
        [yc - h / 2.0, xc - w / 2.0, yc + h / 2.0, xc + w / 2.0]
    } else {
        [b[0].min(b[2]), b[1].min(b[3]), b[0].max(b[2]), b[1].max(b[3])]
    }
}

fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let area = |c: &[f64; 4]| (c[2] - c[0]) * (c[3] - c[1]);
    let (aa, ab) = (area(a), area(b));
    if aa <= 0.0 || ab <= 0.0 {
        return 0.0;
    }
    let h = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let w = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = h * w;
    inter / (aa + ab - inter)
}

/// The selected `(batch, class, box)` triples.
pub(super) fn select(at: &At, center: bool, args: &[Option<Arg>]) -> Result<Vec<[i64; 3]>> {
    let (boxes, scores) = (at.arg(args, 0)?, at.arg(args, 1)?);
    let (&[nb, n, 4], &[sb, nc, sn]) = (boxes.shape, scores.shape) else {
        return Err(
            at.err(format!("boxes {:?} and scores {:?} must be [B, N, 4] and [B, C, N]", boxes.shape, scores.shape))
        );
    };
    if nb != sb || n != sn {
        return Err(at.err(format!("boxes {:?} and scores {:?} differ in batches or boxes", boxes.shape, scores.shape)));
    }
    let bv = boxes.reals().ok_or_else(|| at.dynamic("boxes"))?;
    let sv = scores.reals().ok_or_else(|| at.dynamic("scores"))?;
    let scalar = |i: usize| -> Result<Option<f64>> {
        match args.get(i).and_then(Option::as_ref) {
            None => Ok(None),
            Some(a) => Ok(a.reals().ok_or_else(|| at.dynamic(format!("input {i}")))?.first().copied()),
        }
    };
    let max = scalar(2)?.unwrap_or(0.0).max(0.0) as usize;
    let iou_threshold = scalar(3)?.unwrap_or(0.0);
    let score_threshold = scalar(4)?;
    let mut out = Vec::new();
    let mut cand: Vec<(f64, usize)> = Vec::with_capacity(n);
    for b in 0..nb {
        let boxes: Vec<[f64; 4]> = (0..n).map(|i| corners(&bv[(b * n + i) * 4..][..4], center)).collect();
        for c in 0..nc {
            let s = &sv[(b * nc + c) * n..][..n];
            cand.clear();
            cand.extend(
                s.iter().enumerate().filter(|(_, &v)| score_threshold.is_none_or(|t| v > t)).map(|(i, &v)| (v, i)),
            );
            cand.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
            let mut kept: Vec<usize> = Vec::new();
            for &(_, i) in &cand {
                if kept.len() >= max {
                    break;
                }
                if kept.iter().all(|&k| iou(&boxes[k], &boxes[i]) <= iou_threshold) {
                    kept.push(i);
                    out.push([b as i64, c as i64, i as i64]);
                }
            }
        }
    }
    Ok(out)
}

pub(super) fn infer(at: &At, center: bool, args: &[Option<Arg>]) -> Result<Vec<Vec<usize>>> {
    Ok(vec![vec![select(at, center, args)?.len(), 3]])
}

pub(super) fn eval(at: &At, center: bool, ins: &[Option<&Tensor<f64>>]) -> Result<Vec<Tensor<f64>>> {
    let args: Vec<Option<Arg>> = ins.iter().map(|t| t.map(Arg::of)).collect();
    let sel = select(at, center, &args)?;
    Ok(vec![Tensor::int(vec![sel.len(), 3], DType::I64, sel.into_iter().flatten().collect())])
}
