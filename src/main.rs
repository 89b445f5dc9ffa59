//! Thin entry point: parse the command line and hand over to [`flashmart::cli`].

use std::process::ExitCode;

/// jemalloc instead of glibc malloc: cheaper allocations on the request path and less memory
/// held per open connection (see bench/README.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    flashmart::cli::main().await
}
