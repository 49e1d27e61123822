//! `leadgen`: parses the command line and hands over to the library.

use clap::Parser;

/// A request allocates and frees many small buffers (rows, JSON, TLS records) across the
/// runtime's threads; under search load glibc's allocator took a quarter of the server's CPU
/// (perf, docs/performance.md), which mimalloc's per-thread free lists largely remove.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    leadgen::run(leadgen::cli::Cli::parse()).await
}
