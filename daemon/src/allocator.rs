//! What the daemon asks of the process allocator (mimalloc) to keep its resident memory down.
//!
//! Both binaries that run the daemon (`readyd` and the benchmark harness's child daemon) use
//! mimalloc as their global allocator. Transparent huge pages are off at build time (the `no_thp`
//! feature: a 2 MiB page stays resident as long as one of its objects lives, which held ~50 MB
//! more at 10,000 entities). mimalloc keeps its default purge delay (freed memory goes back to the
//! OS after 1 s): what a large pass frees is returned at once by [`release_free_memory`], and a
//! shorter delay made back-to-back evaluation fault its pages in again (README.md, "The daemon's
//! memory").

/// Return every free page of mimalloc's arenas to the OS now, whatever thread freed it. A pass
/// over many entities replaces hundreds of thousands of results built on short-lived threads;
/// their pages are freed but, left to mimalloc, may stay resident until those threads' heaps
/// are reclaimed. Costs a few milliseconds; called after large passes, off the request path.
#[allow(unsafe_code)] // one FFI call into the allocator the binary already links
pub fn release_free_memory() {
    // SAFETY: `mi_collect` has no preconditions; `true` also purges the process's arenas.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
