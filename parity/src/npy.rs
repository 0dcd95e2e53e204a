//! `.npy` files (NumPy's array format) for model inputs and outputs, through `npyz`.

use std::path::{Path, PathBuf};

use model::Tensor;

/// Why a `.npy` file could not be read or written; names the file.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The file system refused.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// Not an array this module reads (or one `npyz` could not encode).
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NpyError + '_ {
    move |source| NpyError::Io { path: path.to_path_buf(), source }
}

fn format_error(path: &Path, reason: impl std::fmt::Display) -> NpyError {
    NpyError::Format { path: path.to_path_buf(), reason: reason.to_string() }
}

/// Reads a little-endian float32 or float64 C-order array as a float32 tensor.
pub fn read(path: &Path) -> Result<Tensor, NpyError> {
    read_f64(path).map(|t| t.to_f32())
}

/// Reads a little-endian float32 or float64 C-order array as a float64 tensor.
pub fn read_f64(path: &Path) -> Result<Tensor<f64>, NpyError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| format_error(path, format!("not a .npy file: {e}")))?;
    if npy.order() != npyz::Order::C {
        return Err(format_error(path, "only C-order arrays are supported"));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let descr = npy.dtype().descr().trim_matches('\'').to_string();
    let data: Vec<f64> = match descr.as_str() {
        "<f4" => npy.into_vec::<f32>().map(|v| v.into_iter().map(f64::from).collect()),
        "<f8" => npy.into_vec::<f64>(),
        other => return Err(format_error(path, format!("dtype {other} is not float32/float64"))),
    }
    .map_err(|e| format_error(path, e))?;
    if data.len() != shape.iter().product::<usize>() {
        return Err(format_error(path, format!("{} values for shape {shape:?}", data.len())));
    }
    Ok(Tensor::float(shape, data))
}

/// Writes a float32 tensor.
pub fn write(path: &Path, t: &Tensor) -> Result<(), NpyError> {
    let data = t.floats().ok_or_else(|| format_error(path, "only float tensors are written"))?;
    write_values(path, &t.shape, data.iter().copied())
}

/// Writes any tensor's values as float64 (integers converted exactly below 2⁵³).
pub fn write_f64(path: &Path, t: &Tensor<f64>) -> Result<(), NpyError> {
    write_values(path, &t.shape, t.reals().into_iter())
}

fn write_values<T: npyz::AutoSerialize + Default>(
    path: &Path,
    shape: &[usize],
    values: impl Iterator<Item = T>,
) -> Result<(), NpyError> {
    crate::report::ensure_parent(path).map_err(io(path))?;
    let file = std::fs::File::create(path).map_err(io(path))?;
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    use npyz::WriterBuilder;
    let mut w = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(&shape)
        .writer(std::io::BufWriter::new(file))
        .begin_nd()
        .map_err(io(path))?;
    w.extend(values).map_err(io(path))?;
    w.finish().map_err(io(path))
}
