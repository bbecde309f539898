//! Settings of the process allocator (mimalloc) that keep the daemon's resident memory down.
//!
//! Both binaries that run the daemon (`readyd` and the benchmark harness's child daemon) use
//! mimalloc as their global allocator and call [`tune`] first thing in `main`. Transparent huge
//! pages are off at build time (the `no_thp` feature: a 2 MiB page stays resident as long as one
//! of its objects lives, which held ~50 MB more at 10,000 entities).

/// How long freed memory stays committed before mimalloc returns it to the OS, in milliseconds.
/// mimalloc's default is 1,000 ms, but it only purges when the thread that freed the memory
/// allocates or frees again; a worker that goes idle after a pass keeps everything it freed.
/// 10 ms returns memory right after a pass at the cost of more `madvise` calls during one.
pub const PURGE_DELAY_MS: i64 = 10;

/// `mi_option_purge_delay` of mimalloc's `mimalloc.h` (v3; the Rust bindings do not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Apply the settings; call before the first threads start. An explicit `MIMALLOC_PURGE_DELAY`
/// in the environment wins (mimalloc reads it itself).
#[allow(unsafe_code)] // one FFI call into the allocator the binary already links
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` only stores an integer in mimalloc's option table; any value is
    // valid for this option.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
    }
}

/// Return every free page of mimalloc's arenas to the OS now, whatever thread freed it. A pass
/// over many entities replaces hundreds of thousands of results built on short-lived threads;
/// their pages are freed but, left to mimalloc, may stay resident until those threads' heaps
/// are reclaimed. Costs a few milliseconds; called after large passes, off the request path.
#[allow(unsafe_code)] // one FFI call into the allocator the binary already links
pub fn release_free_memory() {
    // SAFETY: `mi_collect` has no preconditions; `true` also purges the process's arenas.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn option_15_is_the_purge_delay_and_tune_sets_it() {
        // SAFETY: reading and writing mimalloc's option table.
        let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        // mimalloc v3's default purge delay (options.c); another option at index 15 would not
        // start at 1,000.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(
                before, 1000,
                "option {MI_OPTION_PURGE_DELAY} is not purge_delay"
            );
        }
        tune();
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        let after = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(after, PURGE_DELAY_MS as std::ffi::c_long);
    }
}
