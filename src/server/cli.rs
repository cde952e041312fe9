//! Runs the subcommand the command line asked for.

use super::{
    accounts_cli,
    config::{Cli, Command, Config, TokenCommand, UserCommand},
    startup::Application,
    store::{throwaway::ThrowawayPostgres, Store},
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
        Some(Command::User(UserCommand::Add {
            name,
            password,
            members,
            database,
        })) => {
            async {
                let store = Store::connect(&database.database_url).await?;
                let id = accounts_cli::add_user(&store, &name, &password, &members).await?;
                println!("created user {name} (id {id}) with {}", members.join(", "));
                Ok(())
            }
            .await
        }
        Some(Command::User(UserCommand::Remove { name, database })) => {
            async {
                let store = Store::connect(&database.database_url).await?;
                accounts_cli::remove_user(&store, &name).await?;
                println!("removed user {name}");
                Ok(())
            }
            .await
        }
        Some(Command::User(UserCommand::SetRole {
            name,
            member,
            database,
        })) => {
            async {
                let store = Store::connect(&database.database_url).await?;
                accounts_cli::set_role(&store, &name, &member).await?;
                println!("{name}: {member}");
                Ok(())
            }
            .await
        }
        Some(Command::Token(TokenCommand::Create {
            user,
            scopes,
            expires_in_days,
            database,
        })) => {
            async {
                let store = Store::connect(&database.database_url).await?;
                let token =
                    accounts_cli::create_token(&store, &user, &scopes, expires_in_days).await?;
                println!("{token}");
                Ok(())
            }
            .await
        }
        Some(Command::Token(TokenCommand::List { user, database })) => {
            async {
                let store = Store::connect(&database.database_url).await?;
                for token in accounts_cli::list_tokens(&store, &user).await? {
                    println!("{}", accounts_cli::token_line(&token));
                }
                Ok(())
            }
            .await
        }
        Some(Command::Token(TokenCommand::Revoke { id, database })) => {
            async {
                let store = Store::connect(&database.database_url).await?;
                accounts_cli::revoke_token(&store, id).await?;
                println!("revoked token {id}");
                Ok(())
            }
            .await
        }
        Some(Command::WsCheck(args)) => super::ws_check::run(args).await,
        Some(Command::ThrowawayPostgres) => throwaway_postgres().await,
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

/// `pfa-sync throwaway-postgres`: a cluster with an empty database `pfa_sync`, its URL on the
/// first line of standard output, stopped (and its folder removed) at SIGINT/SIGTERM.
async fn throwaway_postgres() -> anyhow::Result<()> {
    let cluster = tokio::task::spawn_blocking(ThrowawayPostgres::start).await??;
    let url = cluster.create_database("pfa_sync").await?;
    println!("{url}");
    let stop = tokio_util::sync::CancellationToken::new();
    super::shutdown::cancel_on_signal(stop.clone()).await;
    tokio::task::spawn_blocking(move || drop(cluster)).await?;
    Ok(())
}
