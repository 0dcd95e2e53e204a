//! Strided matrix views: the operands every kernel takes.
//!
//! A view is a slice plus `rows × cols` and a row and a column stride in elements, so row-major,
//! column-major (a transposed operand) and padded layouts are all the same type. Views are
//! validated once, when built: every element they name lies inside the slice, so kernels may
//! index them without further checks.

use crate::error::{KernelError, Result};

/// Largest offset (in elements) of a `rows × cols` view with these strides, or `None` when it
/// is empty; errors when the arithmetic overflows.
fn last_offset(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Result<Option<usize>> {
    if rows == 0 || cols == 0 {
        return Ok(None);
    }
    (rows - 1)
        .checked_mul(row_stride)
        .and_then(|r| (cols - 1).checked_mul(col_stride).and_then(|c| r.checked_add(c)))
        .map(Some)
        .ok_or_else(|| {
            KernelError::Shape(format!("{rows}x{cols} view with strides ({row_stride}, {col_stride}) overflows"))
        })
}

fn check_fits(len: usize, rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Result<()> {
    if let Some(last) = last_offset(rows, cols, row_stride, col_stride)? {
        if last >= len {
            return Err(KernelError::Shape(format!(
                "{rows}x{cols} view with strides ({row_stride}, {col_stride}) needs {} elements, slice has {len}",
                last + 1
            )));
        }
    }
    Ok(())
}

/// The shape accessors every view type has.
macro_rules! view_accessors {
    () => {
        /// Number of rows.
        pub fn rows(&self) -> usize {
            self.rows
        }

        /// Number of columns.
        pub fn cols(&self) -> usize {
            self.cols
        }

        /// Distance in elements between consecutive rows.
        pub fn row_stride(&self) -> usize {
            self.row_stride
        }

        /// Distance in elements between consecutive columns.
        pub fn col_stride(&self) -> usize {
            self.col_stride
        }
    };
}

/// A read-only strided matrix view.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A view with explicit strides (in elements); errors if it reaches past `data`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Result<Self> {
        check_fits(data.len(), rows, cols, row_stride, col_stride)?;
        Ok(Self { data, rows, cols, row_stride, col_stride })
    }

    /// A dense row-major `rows × cols` view.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, cols, 1)
    }

    /// A dense column-major `rows × cols` view (the transpose of a row-major `cols × rows`).
    pub fn col_major(data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, 1, rows)
    }

    view_accessors!();

    /// The element at `(r, c)`; panics when out of range (use in tests and slow paths only).
    pub fn at(&self, r: usize, c: usize) -> f32 {
        assert!(r < self.rows && c < self.cols, "({r}, {c}) outside {}x{}", self.rows, self.cols);
        self.data[r * self.row_stride + c * self.col_stride]
    }

    /// The underlying slice (element `(r, c)` is at `r·row_stride + c·col_stride`).
    pub(crate) fn data(&self) -> &'a [f32] {
        self.data
    }
}

/// A mutable strided matrix view (the output of a kernel).
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatMut<'a> {
    /// A view with explicit strides (in elements); errors if it reaches past `data`.
    ///
    /// Strides that make two elements share a slot are refused, since a kernel writes each
    /// element once and threads write disjoint tiles.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Result<Self> {
        check_fits(data.len(), rows, cols, row_stride, col_stride)?;
        let empty = rows == 0 || cols == 0;
        let aliased = !empty
            && rows > 1
            && cols > 1
            && !((col_stride >= 1 && row_stride >= cols * col_stride)
                || (row_stride >= 1 && col_stride >= rows * row_stride));
        let degenerate = !empty && ((rows > 1 && row_stride == 0) || (cols > 1 && col_stride == 0));
        if aliased || degenerate {
            return Err(KernelError::Shape(format!(
                "output view {rows}x{cols} with strides ({row_stride}, {col_stride}) has overlapping elements"
            )));
        }
        Ok(Self { data, rows, cols, row_stride, col_stride })
    }

    /// A dense row-major `rows × cols` view.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, cols, 1)
    }

    view_accessors!();

    /// Raw pointer to element `(0, 0)`.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut f32 {
        self.data.as_mut_ptr()
    }

    /// Writes element `(r, c)`.
    #[cfg(feature = "cuda")]
    pub(crate) fn set(&mut self, r: usize, c: usize, v: f32) {
        self.data[r * self.row_stride + c * self.col_stride] = v;
    }

    /// The whole backing slice.
    #[cfg(feature = "cuda")]
    pub(crate) fn data_mut(&mut self) -> &mut [f32] {
        self.data
    }
}
