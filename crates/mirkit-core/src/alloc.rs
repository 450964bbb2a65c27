//! Process-wide allocator setting for network work: keep freed memory for reuse.
//!
//! A network step allocates and frees tensors of tens to hundreds of MB (SampleCNN's
//! second layer: 160 MB per activation at batch 16). glibc's `malloc` serves every block
//! above its mmap threshold (dynamic, at most 32 MB) with a fresh `mmap` and returns it
//! with `munmap` on free, so each such tensor is page-faulted in and zeroed by the kernel
//! again, every step: measured on SampleCNN+SE's batch-16 forward, 7.5 s of which most
//! was system time, against 2.0 s with freed memory kept (docs/models.md).
//! [`keep_freed_memory`] raises the mmap and trim thresholds so that large blocks come
//! from the heap and stay there after `free`, ready for the next step.
//!
//! The cost: the process keeps its peak heap (resident memory does not shrink after a
//! large step). That suits a command or a worker that runs networks repeatedly; a
//! long-lived program that runs one large model once and then does other work may
//! prefer not to call it. Library code never calls it: the `mirkit` command line does at
//! start-up, and a program that embeds the library decides for itself. Other platforms'
//! allocators (and musl) are left alone.

/// Makes the C allocator keep freed large blocks for reuse instead of returning them to
/// the operating system (glibc on Linux: `mallopt(M_MMAP_THRESHOLD)` and
/// `mallopt(M_TRIM_THRESHOLD)` set to `i32::MAX`). Returns `true` when the setting was
/// applied, `false` on platforms where it does nothing. Call it once, early, before
/// other threads allocate.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes allocator parameters; both options take an int.
        unsafe {
            let a = libc::mallopt(libc::M_MMAP_THRESHOLD, i32::MAX);
            let b = libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            a == 1 && b == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    /// glibc accepts both settings (the thresholds above 32 MB are allowed by mallopt
    /// since glibc 2.26), and allocation still works afterwards.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn applies_on_glibc() {
        assert!(super::keep_freed_memory());
        let v = vec![1u8; 64 << 20];
        assert_eq!(v.iter().map(|&b| b as usize).sum::<usize>(), 64 << 20);
    }
}
