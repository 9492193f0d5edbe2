//! The `splitguard` command line: runs YAML recipes and the single stages.

mod cli;

/// mimalloc keeps freed tensor buffers for reuse; glibc malloc returned them
/// to the kernel, and every training step paid page faults to get them back.
/// [`splitguard::allocator::keep_freed_memory`] keeps them for the whole run.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    splitguard::allocator::keep_freed_memory();
    cli::main()
}
