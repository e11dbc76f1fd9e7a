//! A hint to the processor's cache: start loading a cache line now, so that a read of it
//! later does not wait for memory. The publisher uses it to load the next connections'
//! mailboxes while the kernel runs the current one's socket write (docs/BENCHMARKS.md,
//! eighth sitting).
//!
//! The second module allowed unsafe code, for one instruction: the standard library's
//! `std::hint::prefetch_read` is not stable yet (rust-lang/rust#146941), and the
//! architecture's intrinsic must be called in an `unsafe` block even though it reads
//! nothing into the program and cannot fault. A crate for one instruction was not worth a
//! dependency; when the standard one is stable, it replaces this.

/// Asks the processor to start loading the cache line that holds `at`, and returns at once.
/// It has no effect on what the program computes: nothing is read through `at`, and any
/// address will do (dangling, null, unmapped). A no-op off x86-64.
#[inline(always)]
pub fn prefetch<T>(at: *const T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: PREFETCHT0 only moves a line into the cache: it dereferences nothing for the
    // program and raises no fault whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// Every cache line of `value`: a point in each 64 bytes of it, and its last byte.
#[inline(always)]
pub fn prefetch_all<T>(value: &T) {
    let at: *const u8 = (value as *const T).cast();
    let size = std::mem::size_of::<T>();
    for offset in (0..size).step_by(64) {
        prefetch(at.wrapping_add(offset));
    }
    prefetch(at.wrapping_add(size.saturating_sub(1)));
}
