//! The `mirkit` command line; everything lives in the [`cli`] module tree.

mod cli;

fn main() -> std::process::ExitCode {
    // before any other thread starts: they inherit the blocked signals
    clean_up_on_signals();
    // large tensors are reused instead of page-faulted in again at every step
    mirkit::core::alloc::keep_freed_memory();
    cli::main()
}

/// SIGINT, SIGTERM and SIGHUP are blocked in every thread and taken by one thread that
/// removes the temporary files in flight (`NAME.part…`, see
/// `mirkit::core::npy::remove_live_temps`) and exits with 128 + the signal's number, as a
/// shell reports a killed command. Outputs already complete stay; none is half-written.
#[cfg(unix)]
fn clean_up_on_signals() {
    // SAFETY: plain libc calls on a zero-initialised `sigset_t` owned here; the mask is
    // changed before this process starts any other thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return;
        }
        let waiter = move || {
            let mut sig: libc::c_int = 0;
            // (inside the unsafe block above) `set` is a valid signal set, `sig` a valid
            // out-pointer
            if libc::sigwait(&set, &mut sig) == 0 {
                let n = mirkit::core::npy::remove_live_temps();
                let name = match sig {
                    libc::SIGINT => "SIGINT",
                    libc::SIGTERM => "SIGTERM",
                    _ => "SIGHUP",
                };
                eprintln!("\ninterrupted by {name}: {n} temporary file(s) removed");
                std::process::exit(128 + sig);
            }
        };
        if std::thread::Builder::new()
            .name("signals".into())
            .spawn(waiter)
            .is_err()
        {
            // no thread: let the signals act as before
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
    }
}

#[cfg(not(unix))]
fn clean_up_on_signals() {}
