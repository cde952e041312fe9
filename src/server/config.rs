//! The command line and the typed configuration, read once at start-up. Every option is also
//! an environment variable (shown by `pfa-sync --help`).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// pfa-sync: real-time PFA budget planning with write-back to PEMS.
#[derive(Debug, Parser)]
#[command(
    name = "pfa-sync",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Options of `serve`, which runs when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web app, the JSON API and the WebSocket (the default).
    Serve(ServeArgs),
    /// Run the PEMS simulator alone, for integrations and load tests.
    PemsSim(PemsSimArgs),
}

/// Where the data lives; taken by every subcommand that touches the store.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database URL. SQLite files and their folder are created if missing; migrations run at start.
    #[arg(
        long,
        env = "PFA_SYNC_DATABASE_URL",
        default_value = "sqlite://data/pfa-sync.db"
    )]
    pub database_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Demo users and data, and the WebSocket badge in the banner.
    Dev,
    /// No demo accounts; for real deployments.
    Prod,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "LEPTOS_SITE_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Base URL of PEMS. Absent: the built-in PEMS simulator starts in-process on a free
    /// loopback port.
    #[arg(long, env = "PFA_SYNC_PEMS_URL")]
    pub pems_url: Option<String>,

    /// dev: demo users and the WebSocket badge; prod: neither.
    #[arg(long, env = "PFA_SYNC_MODE", value_enum, default_value_t = Mode::Prod)]
    pub mode: Mode,

    /// Folder with the compiled site (the `pkg/` bundle and public assets) built by cargo-leptos.
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "PFA_SYNC_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: usize,

    /// Seconds that in-flight requests get to finish after SIGINT/SIGTERM.
    #[arg(long, env = "PFA_SYNC_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct PemsSimArgs {
    /// Address of the simulator.
    #[arg(long, env = "PFA_SYNC_PEMS_SIM_ADDR", default_value = "127.0.0.1:3900")]
    pub addr: SocketAddr,
}

/// Settings of the web server, typed and complete; built from [`ServeArgs`] or by tests.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub database_url: String,
    pub pems_url: Option<String>,
    pub mode: Mode,
    pub site_root: PathBuf,
    pub body_limit: usize,
    pub shutdown_grace: Duration,
}

impl From<ServeArgs> for Config {
    fn from(args: ServeArgs) -> Self {
        Self {
            addr: args.addr,
            database_url: args.database.database_url,
            pems_url: args.pems_url,
            mode: args.mode,
            site_root: args.site_root,
            body_limit: args.body_limit,
            shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        }
    }
}

impl Config {
    /// Defaults for tests and tools: loopback port 0, the given database, simulator in-process.
    pub fn for_tests(database_url: impl Into<String>) -> Self {
        let args = ServeArgs::parse_from_defaults();
        Self {
            addr: "127.0.0.1:0".parse().expect("literal address"),
            database_url: database_url.into(),
            mode: Mode::Dev,
            ..Self::from(args)
        }
    }
}

impl ServeArgs {
    /// The defaults as `--help` documents them, without reading the environment.
    fn parse_from_defaults() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            serve: ServeArgs,
        }
        // Env vars of a developer's shell must not leak into tests; clap has no "ignore env"
        // switch, so the defaults are taken from an explicit argument list.
        Only::parse_from([
            "pfa-sync",
            "--addr=127.0.0.1:0",
            "--database-url=sqlite::memory:",
            "--mode=dev",
            "--site-root=target/site",
        ])
        .serve
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_is_the_default_command_with_documented_defaults() {
        let cli = Cli::try_parse_from(["pfa-sync"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.database.database_url, "sqlite://data/pfa-sync.db");
        assert_eq!(cli.serve.body_limit, 1024 * 1024);
    }

    #[test]
    fn serve_subcommand_takes_every_option() {
        let cli = Cli::try_parse_from([
            "pfa-sync",
            "serve",
            "--addr",
            "127.0.0.1:4000",
            "--database-url",
            "sqlite://x.db",
            "--pems-url",
            "http://127.0.0.1:9",
            "--mode",
            "dev",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("serve expected")
        };
        let config = Config::from(args);
        assert_eq!(config.addr.port(), 4000);
        assert_eq!(config.mode, Mode::Dev);
        assert_eq!(config.pems_url.as_deref(), Some("http://127.0.0.1:9"));
    }

    #[test]
    fn bad_values_are_refused_with_a_message() {
        let err = Cli::try_parse_from(["pfa-sync", "--mode", "staging"]).unwrap_err();
        assert!(err.to_string().contains("staging"));
        assert!(Cli::try_parse_from(["pfa-sync", "--addr", "nowhere"]).is_err());
    }
}
