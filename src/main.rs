//! Thin entry point: parse the command line and hand over to [`flashmart::cli`].

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    flashmart::cli::main().await
}
