//! Runs the subcommand the command line asked for.

use super::{
    config::{Cli, Command, Config},
    startup::Application,
    sync::pems::simulator,
    telemetry,
};
use clap::Parser;
use std::process::ExitCode;

/// Parses the command line, runs the chosen subcommand and maps failure to exit code 1.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let outcome = match cli.command {
        None => serve(Config::from(cli.serve)).await,
        Some(Command::Serve(args)) => serve(Config::from(args)).await,
        Some(Command::PemsSim(args)) => simulator::run_standalone(args.addr).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("pfa-sync: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    app.run_until_stopped().await
}
