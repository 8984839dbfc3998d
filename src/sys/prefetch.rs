//! The CPU's prefetch hint, for the flow table's bucket loads ahead of their lookups
//! (VPP's lb node, DPDK l3fwd).

/// Asks the CPU to start loading `value`'s cache line into L1 without waiting for it.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it never faults and has no architectural effect, and
    // the address comes from a live reference.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
