//! Large tables on transparent huge pages. A flow table of a million flows spans tens of
//! MiB: on 4 KiB pages nearly every lookup also misses the TLB and walks the page
//! tables, which is what DPDK's hugepage memory avoids.

use std::io;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use bytemuck::Zeroable;

/// The base page size: the stride that touches every page once.
const PAGE: usize = 4096;

/// A fixed-length slice in its own anonymous mapping, backed by transparent huge pages
/// when the kernel grants them (`MADV_HUGEPAGE` is a hint; where THP is off the table
/// simply lives on base pages).
pub struct HugePageSlice<T> {
    values: NonNull<T>,
    len: usize,
    mapped_bytes: usize,
}

// SAFETY: the slice owns its mapping exclusively, like a `Box<[T]>`.
unsafe impl<T: Send> Send for HugePageSlice<T> {}
// SAFETY: shared access only hands out `&[T]`.
unsafe impl<T: Sync> Sync for HugePageSlice<T> {}

impl<T: Zeroable> HugePageSlice<T> {
    /// `len` zeroed values, every page touched now. Call it on the thread that will use
    /// the table: first touch places the memory on that thread's NUMA node, and no page
    /// fault is left for the packet path.
    pub fn zeroed(len: usize) -> io::Result<Self> {
        const {
            assert!(
                std::mem::align_of::<T>() <= PAGE,
                "values must fit page alignment"
            );
            assert!(
                !std::mem::needs_drop::<T>(),
                "the mapping is freed without drops"
            );
        }
        let bytes = std::mem::size_of::<T>()
            .checked_mul(len)
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let mapped_bytes = bytes.max(1).next_multiple_of(PAGE);
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if address == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the range is the mapping just created; the advice changes only how
        // the kernel backs it. Its result is ignored: without THP, base pages serve.
        unsafe { libc::madvise(address, mapped_bytes, libc::MADV_HUGEPAGE) };
        let values = NonNull::new(address.cast::<T>()).expect("mmap never returns null");
        let mut slice = HugePageSlice {
            values,
            len,
            mapped_bytes,
        };
        let stride = (PAGE / std::mem::size_of::<T>().max(1)).max(1);
        for value in slice.iter_mut().step_by(stride) {
            *value = T::zeroed();
        }
        Ok(slice)
    }
}

impl<T> Deref for HugePageSlice<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: the mapping holds `len` values, zero-initialised (valid for a
        // `Zeroable` T), page-aligned, and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.values.as_ptr(), self.len) }
    }
}

impl<T> DerefMut for HugePageSlice<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.values.as_ptr(), self.len) }
    }
}

impl<T> Drop for HugePageSlice<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing refers to it after drop; the values
        // need no drop (checked in `zeroed`).
        unsafe { libc::munmap(self.values.as_ptr().cast(), self.mapped_bytes) };
    }
}

impl<T> std::fmt::Debug for HugePageSlice<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugePageSlice")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_zeroed_and_holds_writes() {
        let mut table = HugePageSlice::<[u64; 8]>::zeroed(100_000).unwrap();
        assert_eq!(table.len(), 100_000);
        assert!(table.iter().all(|v| *v == [0; 8]));
        table[99_999][7] = 42;
        assert_eq!(table[99_999][7], 42);
    }

    #[test]
    fn a_zero_length_slice_maps_and_unmaps() {
        let table = HugePageSlice::<u32>::zeroed(0).unwrap();
        assert!(table.is_empty());
    }
}
