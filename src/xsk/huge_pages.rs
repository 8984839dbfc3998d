//! Large tables on transparent huge pages. A flow table of a million flows spans tens of
//! MiB: on 4 KiB pages nearly every lookup also misses the TLB and walks the page
//! tables, which is what DPDK's hugepage memory avoids. It lives here because this
//! module is the crate's one home for `unsafe`.

use bytemuck::Zeroable;

/// The huge page size the kernel uses for transparent huge pages on x86-64 and arm64.
const HUGE_PAGE: usize = 2 << 20;
/// The base page size: the stride that touches every page once.
const PAGE: usize = 4096;

/// `len` zeroed values, with the kernel asked to back them with transparent huge pages
/// (`MADV_HUGEPAGE`; a hint, refused silently where THP is off), and every page touched
/// now. Call it on the thread that will use the table: first touch places the memory on
/// that thread's NUMA node, and no page fault is left for the packet path.
pub fn zeroed_on_huge_pages<T: Zeroable>(len: usize) -> Box<[T]> {
    let mut values: Box<[T]> = bytemuck::allocation::zeroed_slice_box(len);
    let bytes = std::mem::size_of_val(&*values);
    let start = values.as_ptr() as usize;
    let aligned_start = start.next_multiple_of(HUGE_PAGE);
    let aligned_end = (start + bytes) / HUGE_PAGE * HUGE_PAGE;
    if aligned_end > aligned_start {
        // SAFETY: the range lies inside the live allocation `values`; MADV_HUGEPAGE only
        // changes how the kernel backs those pages, never their contents.
        unsafe {
            libc::madvise(
                aligned_start as *mut libc::c_void,
                aligned_end - aligned_start,
                libc::MADV_HUGEPAGE,
            );
        }
    }
    let stride = (PAGE / std::mem::size_of::<T>().max(1)).max(1);
    for value in values.iter_mut().step_by(stride) {
        *value = T::zeroed();
    }
    values
}
