//! The `mirkit` command line; everything lives in the [`cli`] module tree.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
