//! The `mirkit` command's thread setting for one thread, for programs that want the same.
//!
//! rayon runs a parallel loop started outside its pool by handing it to the pool's
//! workers and putting the caller to sleep until they finish. With one thread that is
//! all overhead: the only worker wakes, runs the whole loop, and wakes the caller — two
//! thread switches per loop, where PyTorch's OpenMP runs the loop on the caller. A
//! training step of the 1-D CNN (batch 16) starts a few hundred such loops:
//! 4.4–4.9 ms with the hand-offs, 2.5–3.7 ms without (one thread, same minutes, five
//! alternating runs). [`inline_single_thread`] makes the calling thread the only worker
//! of a pool of its own, so its loops run on it; results are the same either way.

use std::sync::OnceLock;

/// The calling thread's own one-worker pool, kept for the life of the process.
static OWN_POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();

/// Where the rayon pool has one thread (`RAYON_NUM_THREADS=1`, `--threads 1`), makes
/// the calling thread the only worker of a pool of its own, so that the parallel loops it
/// starts run on it instead of being handed to the global pool's worker. Other threads
/// (a decoding or batch-loading thread) keep using the global pool, so nothing waits on
/// a thread that is itself waiting. Call it once, early, on the thread that runs the
/// work, after the global pool is sized; the `mirkit` command does. Returns whether it
/// applied: `false` with more than one thread, when this thread already belongs to a
/// pool, or when another thread took the one pool first.
///
/// ```
/// // in a program's main thread, after choosing the thread count
/// if mirkit::threads::inline_single_thread() {
///     assert_eq!(rayon::current_thread_index(), Some(0));
/// }
/// ```
pub fn inline_single_thread() -> bool {
    inline_when(rayon::current_num_threads())
}

/// [`inline_single_thread`] for a pool of `threads` threads.
fn inline_when(threads: usize) -> bool {
    if threads != 1 || rayon::current_thread_index().is_some() || OWN_POOL.get().is_some() {
        return false;
    }
    let Ok(pool) = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .use_current_thread()
        .build()
    else {
        return false;
    };
    OWN_POOL.set(pool).is_ok()
}

#[cfg(test)]
mod tests {
    use rayon::prelude::*;

    /// On a fresh thread: more than one thread declines; one thread makes the thread its
    /// pool's only worker, whose loops give the same results; a second call declines.
    #[test]
    fn one_thread_runs_loops_on_the_caller() {
        std::thread::spawn(|| {
            assert!(!super::inline_when(2));
            assert_eq!(rayon::current_thread_index(), None);
            assert!(super::inline_when(1));
            assert_eq!(rayon::current_thread_index(), Some(0));
            assert_eq!(rayon::current_num_threads(), 1);
            let me = std::thread::current().id();
            let on_me = (0..1000)
                .into_par_iter()
                .all(|_| std::thread::current().id() == me);
            assert!(on_me, "a loop ran on another thread");
            let s: u64 = (0..1000u64).into_par_iter().map(|i| i * i).sum();
            assert_eq!(s, (0..1000u64).map(|i| i * i).sum::<u64>());
            assert!(!super::inline_when(1), "a second pool");
        })
        .join()
        .unwrap();
    }
}
