//! The `mirkit` command line; everything lives in the [`cli`] module tree.

mod cli;

fn main() -> std::process::ExitCode {
    // large tensors are reused instead of page-faulted in again at every step
    mirkit::core::alloc::keep_freed_memory();
    cli::main()
}
