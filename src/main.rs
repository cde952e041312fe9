//! The `pfa-sync` binary: parse the command line once, then hand over to the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    pfa_sync::server::cli::main().await
}
