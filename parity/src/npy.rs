//! `.npy` files (NumPy's array format) for model inputs and outputs, through `npyz`.

use std::path::Path;

use model::Tensor;

/// Reads a little-endian float32 or float64 C-order array as a float32 tensor.
pub fn read(path: &Path) -> Result<Tensor, String> {
    read_f64(path).map(|t| t.to_f32())
}

/// Reads a little-endian float32 or float64 C-order array as a float64 tensor.
pub fn read_f64(path: &Path) -> Result<Tensor<f64>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| format!("{}: not a .npy file: {e}", path.display()))?;
    if npy.order() != npyz::Order::C {
        return Err(format!("{}: only C-order arrays are supported", path.display()));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let descr = npy.dtype().descr().trim_matches('\'').to_string();
    let data: Vec<f64> = match descr.as_str() {
        "<f4" => npy.into_vec::<f32>().map(|v| v.into_iter().map(f64::from).collect()),
        "<f8" => npy.into_vec::<f64>(),
        other => return Err(format!("{}: dtype {other} is not float32/float64", path.display())),
    }
    .map_err(|e| format!("{}: {e}", path.display()))?;
    if data.len() != shape.iter().product::<usize>() {
        return Err(format!("{}: {} values for shape {shape:?}", path.display(), data.len()));
    }
    Ok(Tensor::float(shape, data))
}

/// Writes a float32 tensor.
pub fn write(path: &Path, t: &Tensor) -> Result<(), String> {
    let data = t.floats().ok_or_else(|| format!("{}: only float tensors are written", path.display()))?;
    write_values(path, &t.shape, data.iter().copied())
}

/// Writes any tensor's values as float64 (integers converted exactly below 2⁵³).
pub fn write_f64(path: &Path, t: &Tensor<f64>) -> Result<(), String> {
    write_values(path, &t.shape, t.reals().into_iter())
}

fn write_values<T: npyz::AutoSerialize + Default>(
    path: &Path,
    shape: &[usize],
    values: impl Iterator<Item = T>,
) -> Result<(), String> {
    crate::report::ensure_parent(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    use npyz::WriterBuilder;
    let mut w = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(&shape)
        .writer(std::io::BufWriter::new(file))
        .begin_nd()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    w.extend(values).map_err(|e| format!("{}: {e}", path.display()))?;
    w.finish().map_err(|e| format!("{}: {e}", path.display()))
}
