//! POSIX shared memory: a caller's `shm_open` object mapped for the length of one call, with
//! the handle's byte range checked against the object's real size before anything is read or
//! written.

use std::ffi::CString;

/// A mapped shared-memory object.
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
    writable: bool,
}

// SAFETY: the mapping is plain memory owned by this value until drop; access goes through
// `&self`/`&mut self`, so Rust's aliasing rules hold inside this process (another process may
// change the bytes, which is the shared-memory contract and only affects their values).
unsafe impl Send for Mapping {}
// SAFETY: as above; shared references only read.
unsafe impl Sync for Mapping {}

/// Why a shared-memory object cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// Not a name `shm_open` takes.
    #[error("shared memory name `{0}` is not a POSIX shm_open name (`/name`, no other `/`)")]
    Name(String),
    /// The system refused a call on the object.
    #[error("shared memory `{name}`: {call}: {source}")]
    Os {
        /// The object.
        name: String,
        /// The call (`shm_open`, `fstat`, `mmap`, `ftruncate`).
        call: &'static str,
        /// What the system said.
        source: std::io::Error,
    },
    /// The object has no bytes.
    #[error("shared memory `{0}` is empty")]
    Empty(String),
    /// An offset and size that overflow.
    #[error("{what}: offset {offset} + size {size} overflows")]
    Overflow {
        /// Which handle.
        what: String,
        /// Its offset.
        offset: u64,
        /// Its size.
        size: u64,
    },
    /// A range past the object's end.
    #[error("{what}: bytes {offset}..{end} are past the end of the shared memory object ({len} bytes)")]
    PastEnd {
        /// Which handle.
        what: String,
        /// Its offset.
        offset: u64,
        /// Its end.
        end: u64,
        /// The object's size.
        len: usize,
    },
    /// A range smaller than the image.
    #[error("{what}: size {size} is too small: the image needs {need} bytes")]
    TooSmall {
        /// Which handle.
        what: String,
        /// Its size.
        size: u64,
        /// Bytes the image needs.
        need: usize,
    },
}

fn os_error(name: &str, call: &'static str) -> ShmError {
    ShmError::Os { name: name.to_string(), call, source: std::io::Error::last_os_error() }
}

/// `name` as `shm_open` wants it: one leading `/`, no other `/`, at most 255 bytes.
fn object_name(name: &str) -> Result<CString, ShmError> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() || bare.contains('/') || bare.len() > 254 || bare.contains('\0') {
        return Err(ShmError::Name(name.to_string()));
    }
    CString::new(format!("/{bare}")).map_err(|_| ShmError::Name(name.to_string()))
}

impl Mapping {
    /// Opens and maps the object `name`, read-only or read-write.
    pub fn open(name: &str, writable: bool) -> Result<Mapping, ShmError> {
        let c = object_name(name)?;
        let flags = if writable { libc::O_RDWR } else { libc::O_RDONLY };
        // SAFETY: `c` is a NUL-terminated string that outlives the call.
        let fd = unsafe { libc::shm_open(c.as_ptr(), flags, 0) };
        if fd < 0 {
            return Err(os_error(name, "shm_open"));
        }
        let result = Self::map_fd(fd, name, writable);
        // SAFETY: `fd` is ours and open; the mapping (if any) stays valid after close.
        unsafe { libc::close(fd) };
        result
    }

    fn map_fd(fd: libc::c_int, name: &str, writable: bool) -> Result<Mapping, ShmError> {
        // SAFETY: `st` is a plain C struct, all-zero is a valid value for fstat to overwrite.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is open and `st` is a valid place to write.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return Err(os_error(name, "fstat"));
        }
        let len = usize::try_from(st.st_size).unwrap_or(0);
        if len == 0 {
            return Err(ShmError::Empty(name.to_string()));
        }
        let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
        // SAFETY: a fresh shared mapping of `len` bytes of an open descriptor; the kernel picks
        // the address; failure is checked below.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd, 0) };
        if ptr == libc::MAP_FAILED {
            return Err(os_error(name, "mmap"));
        }
        Ok(Mapping { ptr: ptr.cast(), len, writable })
    }

    /// The object's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the object is empty (never: [`Mapping::open`] refuses empty objects).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks that `offset .. offset + size` lies in the object and holds `need` bytes.
    pub fn check_range(&self, what: &str, offset: u64, size: u64, need: usize) -> Result<usize, ShmError> {
        let what = what.to_string();
        let end = offset.checked_add(size).ok_or_else(|| ShmError::Overflow { what: what.clone(), offset, size })?;
        if end > self.len as u64 {
            return Err(ShmError::PastEnd { what, offset, end, len: self.len });
        }
        if size < need as u64 {
            return Err(ShmError::TooSmall { what, size, need });
        }
        Ok(offset as usize)
    }

    /// Copies `len` bytes from `offset` (range checked by the caller with `check_range`).
    pub fn read(&self, offset: usize, len: usize) -> Vec<u8> {
        assert!(offset.checked_add(len).is_some_and(|e| e <= self.len), "range checked before reading");
        let mut out = vec![0u8; len];
        // SAFETY: `offset + len ≤ self.len` (asserted), the mapping is readable for `self.len`
        // bytes, and `out` is a distinct allocation of `len` bytes.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(offset), out.as_mut_ptr(), len) };
        out
    }

    /// Writes `bytes` at `offset` (range checked by the caller with `check_range`).
    pub fn write(&mut self, offset: usize, bytes: &[u8]) {
        assert!(self.writable, "mapped read-only");
        assert!(offset.checked_add(bytes.len()).is_some_and(|e| e <= self.len), "range checked before writing");
        // SAFETY: `offset + bytes.len() ≤ self.len` (asserted), the mapping is writable (asserted)
        // and `bytes` is our own memory, not inside the mapping.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(offset), bytes.len()) };
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned and nothing uses them after drop.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Creates (or replaces) a shared-memory object of `len` bytes and maps it read-write: for
/// clients and tests. The object is removed again with [`unlink`].
pub fn create(name: &str, len: usize) -> Result<Mapping, ShmError> {
    let c = object_name(name)?;
    // SAFETY: `c` is NUL-terminated and outlives the call.
    let fd = unsafe { libc::shm_open(c.as_ptr(), libc::O_RDWR | libc::O_CREAT, 0o600) };
    if fd < 0 {
        return Err(os_error(name, "shm_open"));
    }
    // SAFETY: `fd` is open for writing.
    let sized = unsafe { libc::ftruncate(fd, len as libc::off_t) };
    let result = if sized == 0 { Mapping::map_fd(fd, name, true) } else { Err(os_error(name, "ftruncate")) };
    // SAFETY: `fd` is ours and open.
    unsafe { libc::close(fd) };
    result
}

/// Removes a shared-memory object's name.
pub fn unlink(name: &str) {
    if let Ok(c) = object_name(name) {
        // SAFETY: `c` is NUL-terminated and outlives the call.
        unsafe { libc::shm_unlink(c.as_ptr()) };
    }
}
