//! The `splitguard` command line: runs YAML recipes and the single stages.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
