//! Checking a `DetectAnomalies` request before it is queued: the bitmap's size and where its
//! pixels are (bytes in the request or a shared-memory range), and where the mask goes. Every
//! problem is an `INVALID_ARGUMENT` naming the field.

use tonic::Status;

use crate::proto::{bitmap, AnomalyMaskParams, Bitmap, SharedMemoryHandle};
use crate::shm::Mapping;

/// The smallest width and height accepted.
pub const MIN_SIDE: i32 = 64;
/// The largest width and height accepted.
pub const MAX_SIDE: i32 = 4096;

/// Where a call's pixels are.
pub enum Pixels {
    /// Sent in the request.
    Bytes(Vec<u8>),
    /// In the caller's shared memory, from `offset`.
    Shared {
        /// The mapped object.
        map: Mapping,
        /// First byte of the image.
        offset: usize,
    },
}

impl Pixels {
    /// The packed RGB888 bytes (copied out of shared memory, so the caller may reuse it as
    /// soon as the call returns).
    pub fn into_bytes(self, len: usize) -> Vec<u8> {
        match self {
            Pixels::Bytes(b) => b,
            Pixels::Shared { map, offset } => map.read(offset, len),
        }
    }
}

/// Where the mask goes when the caller gave `anomaly_mask_params`.
pub struct MaskTarget {
    /// The mapped object (read-write).
    pub map: Mapping,
    /// First byte of the mask.
    pub offset: usize,
    /// The handle as the caller gave it (echoed in the answer's bitmap).
    pub handle: SharedMemoryHandle,
}

/// A checked request.
pub struct Checked {
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
    /// The pixels.
    pub pixels: Pixels,
    /// Where the mask goes, if not into the answer.
    pub mask: Option<MaskTarget>,
}

fn invalid(m: String) -> Status {
    Status::invalid_argument(m)
}

/// Checks `bitmap` and `mask` (the request's fields).
pub fn check(bitmap: Option<Bitmap>, mask: Option<AnomalyMaskParams>) -> Result<Checked, Status> {
    let b = bitmap.ok_or_else(|| invalid("bitmap is missing".into()))?;
    for (what, v) in [("width", b.width), ("height", b.height)] {
        if !(MIN_SIDE..=MAX_SIDE).contains(&v) {
            return Err(invalid(format!(
                "bitmap {what} {v} is outside {MIN_SIDE}..={MAX_SIDE} (images from {MIN_SIDE}x{MIN_SIDE} to {MAX_SIDE}x{MAX_SIDE})"
            )));
        }
    }
    let (width, height) = (b.width as usize, b.height as usize);
    let need = width * height * 3;
    let pixels = match b.data {
        None => return Err(invalid("bitmap has neither byte_data nor shared_memory_handle".into())),
        Some(bitmap::Data::ByteData(bytes)) => {
            if bytes.len() != need {
                return Err(invalid(format!(
                    "bitmap byte_data has {} bytes; a {width}x{height} RGB888 image has {need}",
                    bytes.len()
                )));
            }
            Pixels::Bytes(bytes)
        }
        Some(bitmap::Data::SharedMemoryHandle(h)) => {
            let map = Mapping::open(&h.name, false).map_err(|e| invalid(format!("bitmap {e}")))?;
            let offset = map
                .check_range("bitmap shared_memory_handle", h.offset, h.size, need)
                .map_err(|e| invalid(e.to_string()))?;
            Pixels::Shared { map, offset }
        }
    };
    let mask = match mask {
        None => None,
        Some(AnomalyMaskParams { shared_memory_handle: None }) => {
            return Err(invalid("anomaly_mask_params has no shared_memory_handle".into()))
        }
        Some(AnomalyMaskParams { shared_memory_handle: Some(h) }) => {
            let map = Mapping::open(&h.name, true).map_err(|e| invalid(format!("anomaly mask {e}")))?;
            let offset = map
                .check_range("anomaly_mask_params shared_memory_handle", h.offset, h.size, need)
                .map_err(|e| invalid(e.to_string()))?;
            Some(MaskTarget { map, offset, handle: h })
        }
    };
    Ok(Checked { width, height, pixels, mask })
}
