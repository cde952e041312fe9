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
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens for non-browser clients.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Check a running server end to end: connect, publish, measure latency, verify replay.
    WsCheck(WsCheckArgs),
    /// Run a throwaway PostgreSQL (Debian's server binaries, a temp folder, a free loopback
    /// port) until Ctrl-C, for trying several instances (`make run-cluster`); prints its URL.
    ThrowawayPostgres,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user with memberships, e.g. `user add ana --password 'secret-1' --member org-rio:planner`.
    Add {
        /// Username (1-64 characters: letters, digits, '.', '_', '-').
        name: String,
        /// Password, at least 8 characters.
        #[arg(long, env = "PFA_SYNC_USER_PASSWORD")]
        password: String,
        /// ORG:ROLE, repeatable; ROLE is viewer, editor, planner or admin.
        #[arg(long = "member", required = true)]
        members: Vec<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Remove a user: no more sign-in, sessions and tokens revoked (open sockets close within
    /// a heartbeat), memberships deleted; jobs, history and the audit trail keep the name.
    Remove {
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Set a user's role in an organization, e.g. `user set-role ana --member org-rio:viewer`;
    /// `ORG:none` removes the membership. Takes effect on the user's next request or command.
    SetRole {
        name: String,
        /// ORG:ROLE; ROLE is viewer, editor, planner, admin or none.
        #[arg(long = "member")]
        member: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a bearer token acting with the user's memberships; prints it once.
    Create {
        /// The user the token acts as.
        #[arg(long)]
        user: String,
        /// Extra scope; `publish` allows the publish API in the user's organizations.
        #[arg(long = "scope", value_parser = ["publish"])]
        scopes: Vec<String>,
        /// Days until the token expires (default: until revoked).
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List a user's tokens: id, scopes, created, expiry or revocation (never the tokens).
    List {
        #[arg(long)]
        user: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Revoke a token by the id `token list` shows; sockets opened with it close within a
    /// heartbeat.
    Revoke {
        id: i64,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Clone, Args)]
pub struct WsCheckArgs {
    /// Base URL of the server, e.g. http://localhost:3000.
    #[arg(long, default_value = "http://localhost:3000")]
    pub url: String,
    /// Organization to check.
    #[arg(long, default_value = "org-rio")]
    pub org: String,
    /// Bearer token with the publish scope (`pfa-sync token create --user admin --scope publish`).
    #[arg(long, env = "PFA_SYNC_TOKEN")]
    pub token: String,
    /// Events published for the latency figure (at least 100).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(100..))]
    pub events: u32,
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

    /// Origins allowed to use the API and the WebSocket with a session (comma-separated,
    /// e.g. https://pfa.example.com). Empty: the server's own origin only.
    #[arg(
        long = "allowed-origin",
        env = "PFA_SYNC_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Addresses of load balancers or proxies in front of the server (comma-separated): for a
    /// request from one of them, login throttling per client address takes the client's
    /// address from `X-Forwarded-For`.
    #[arg(
        long = "trusted-proxy",
        env = "PFA_SYNC_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// Mark the session cookie Secure (serve over HTTPS, e.g. behind a TLS proxy).
    #[arg(long, env = "PFA_SYNC_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// Hours a browser session lasts.
    #[arg(long, env = "PFA_SYNC_SESSION_TTL_HOURS", default_value_t = 12)]
    pub session_ttl_hours: u64,

    /// Failed sign-ins a minute allowed per username from one client address (also the burst).
    #[arg(
        long,
        env = "PFA_SYNC_LOGIN_PER_USER_ADDR_PER_MIN",
        default_value_t = 10
    )]
    pub login_per_user_addr_per_min: u32,

    /// Failed sign-ins a minute allowed per username from all addresses together (also the
    /// burst): higher than per address, so that guessing from elsewhere does not lock the user
    /// out at once.
    #[arg(long, env = "PFA_SYNC_LOGIN_PER_USER_PER_MIN", default_value_t = 100)]
    pub login_per_user_per_min: u32,

    /// Failed sign-ins a minute allowed per client address, whatever the username (also the
    /// burst).
    #[arg(long, env = "PFA_SYNC_LOGIN_PER_ADDR_PER_MIN", default_value_t = 60)]
    pub login_per_addr_per_min: u32,

    /// Seconds between HEARTBEAT frames and pings; a peer silent for two intervals is dropped.
    #[arg(long, env = "PFA_SYNC_HEARTBEAT_SECS", default_value_t = 25)]
    pub heartbeat_secs: u64,

    /// Events the log keeps per organization for replay.
    #[arg(long, env = "PFA_SYNC_EVENT_LOG_MAX_EVENTS", default_value_t = 10_000)]
    pub event_log_max_events: u64,

    /// Hours the log keeps an event for replay.
    #[arg(long, env = "PFA_SYNC_EVENT_LOG_MAX_AGE_HOURS", default_value_t = 168)]
    pub event_log_max_age_hours: u64,

    /// Messages queued per WebSocket before progress is coalesced and, when still full, the
    /// client is closed with 4008.
    #[arg(long, env = "PFA_SYNC_WS_OUTBOX_CAPACITY", default_value_t = 256)]
    pub ws_outbox_capacity: usize,

    /// Connections served at once (WebSockets included); more wait in the listen backlog
    /// until one closes.
    #[arg(long, env = "PFA_SYNC_MAX_CONNECTIONS", default_value_t = 16_384)]
    pub max_connections: usize,

    /// Seconds a client has to send a request's headers, from connecting or from its previous
    /// response (so also how long an idle kept-alive connection stays open).
    #[arg(long, env = "PFA_SYNC_HEADER_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_secs: u64,

    /// WebSockets one user may have open on this instance at once; the next is closed with
    /// 4429.
    #[arg(long, env = "PFA_SYNC_WS_MAX_SOCKETS_PER_USER", default_value_t = 20)]
    pub ws_max_sockets_per_user: usize,

    /// In dev mode, do not load the demo PFA records (the demo users are still created).
    #[arg(long, env = "PFA_SYNC_NO_DEMO_DATA")]
    pub no_demo_data: bool,

    /// PEMS requests in flight at once per organization.
    #[arg(long, env = "PFA_SYNC_SYNC_CONCURRENCY", default_value_t = 4)]
    pub sync_concurrency: usize,

    /// PEMS requests per second per organization.
    #[arg(long, env = "PFA_SYNC_PEMS_RATE", default_value_t = 50)]
    pub pems_rate: u32,

    /// Attempts per record before a retryable PEMS error fails it.
    #[arg(long, env = "PFA_SYNC_SYNC_MAX_ATTEMPTS", default_value_t = 3)]
    pub sync_max_attempts: u32,

    /// First retry delay in milliseconds (doubles per attempt, full jitter).
    #[arg(long, env = "PFA_SYNC_RETRY_BASE_MS", default_value_t = 1000)]
    pub retry_base_ms: u64,

    /// Longest retry delay in milliseconds.
    #[arg(long, env = "PFA_SYNC_RETRY_CAP_MS", default_value_t = 30_000)]
    pub retry_cap_ms: u64,

    /// Timeout of one PEMS request in milliseconds.
    #[arg(long, env = "PFA_SYNC_PEMS_TIMEOUT_MS", default_value_t = 5000)]
    pub pems_timeout_ms: u64,

    /// Lease of a running sync job in seconds: the runner renews it every third of it, and
    /// another instance takes the job over when an instance dies and the lease runs out.
    #[arg(long, env = "PFA_SYNC_JOB_LEASE_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=3600))]
    pub job_lease_secs: u64,
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
    pub allowed_origins: Vec<String>,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub secure_cookies: bool,
    pub session_ttl: Duration,
    pub login_per_user_addr_per_min: u32,
    pub login_per_user_per_min: u32,
    pub login_per_addr_per_min: u32,
    pub heartbeat: Duration,
    pub event_log_max_events: u64,
    pub event_log_max_age: Duration,
    pub ws_outbox_capacity: usize,
    pub ws_max_sockets_per_user: usize,
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub sync: crate::server::sync::engine::EngineSettings,
    pub pems_timeout: Duration,
    /// Load the demo records in dev mode.
    pub demo_data: bool,
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
            allowed_origins: args.allowed_origins,
            trusted_proxies: args.trusted_proxies,
            secure_cookies: args.secure_cookies,
            session_ttl: Duration::from_secs(args.session_ttl_hours * 3600),
            login_per_user_addr_per_min: args.login_per_user_addr_per_min,
            login_per_user_per_min: args.login_per_user_per_min,
            login_per_addr_per_min: args.login_per_addr_per_min,
            heartbeat: Duration::from_secs(args.heartbeat_secs.max(1)),
            event_log_max_events: args.event_log_max_events.max(1),
            event_log_max_age: Duration::from_secs(args.event_log_max_age_hours * 3600),
            ws_outbox_capacity: args.ws_outbox_capacity.max(4),
            ws_max_sockets_per_user: args.ws_max_sockets_per_user.max(1),
            max_connections: args.max_connections.max(1),
            header_timeout: Duration::from_secs(args.header_timeout_secs),
            sync: crate::server::sync::engine::EngineSettings {
                concurrency_per_org: args.sync_concurrency.max(1),
                rate_per_org: args.pems_rate.max(1),
                max_attempts: args.sync_max_attempts.max(1),
                retry_base: Duration::from_millis(args.retry_base_ms),
                retry_cap: Duration::from_millis(args.retry_cap_ms.max(args.retry_base_ms)),
                progress_interval: Duration::from_millis(100),
                lease: Duration::from_secs(args.job_lease_secs),
            },
            pems_timeout: Duration::from_millis(args.pems_timeout_ms.max(1)),
            demo_data: !args.no_demo_data,
        }
    }
}

impl Config {
    /// Whether the session cookie is marked `Secure`: when asked for (`--secure-cookies`),
    /// and always for a production server whose public origin is https.
    pub fn cookie_secure(&self) -> bool {
        self.secure_cookies
            || (self.mode == Mode::Prod
                && self
                    .allowed_origins
                    .iter()
                    .any(|o| o.to_ascii_lowercase().starts_with("https://")))
    }

    /// Refuses settings that are unsafe to serve with: a production server reachable beyond
    /// loopback must be told its public origin, since it cannot trust the Host header there.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.mode == Mode::Prod
            && !self.addr.ip().is_loopback()
            && self.allowed_origins.is_empty()
        {
            anyhow::bail!(
                "a production server on {} needs its public origin, e.g. \
                 --allowed-origin https://pfa.example.com (PFA_SYNC_ALLOWED_ORIGINS): off \
                 loopback the Host header is not trusted to tell the server's own origin",
                self.addr
            );
        }
        Ok(())
    }

    /// Defaults for tests and tools: loopback port 0, the given database, simulator in-process.
    pub fn for_tests(database_url: impl Into<String>) -> Self {
        let args = ServeArgs::parse_from_defaults();
        Self {
            addr: "127.0.0.1:0".parse().expect("literal address"),
            database_url: database_url.into(),
            mode: Mode::Dev,
            demo_data: false,
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

    #[test]
    fn a_production_server_off_loopback_needs_its_public_origin() {
        let mut config = Config::for_tests("sqlite::memory:");
        config.mode = Mode::Prod;
        assert!(config.check().is_ok(), "loopback");
        config.addr = "0.0.0.0:3000".parse().unwrap();
        let refused = config.check().unwrap_err().to_string();
        assert!(refused.contains("--allowed-origin"), "{refused}");
        config.allowed_origins = vec!["https://pfa.example.com".into()];
        assert!(config.check().is_ok());
        config.allowed_origins.clear();
        config.mode = Mode::Dev;
        assert!(config.check().is_ok(), "dev mode keeps its defaults");
    }

    #[test]
    fn the_session_cookie_is_secure_in_production_behind_an_https_origin() {
        let mut config = Config::for_tests("sqlite::memory:");
        config.allowed_origins = vec!["HTTPS://pfa.example.com".into()];
        assert!(!config.cookie_secure(), "dev mode");
        config.mode = Mode::Prod;
        assert!(config.cookie_secure());
        config.allowed_origins = vec!["http://pfa.internal".into()];
        assert!(!config.cookie_secure());
        config.secure_cookies = true;
        assert!(config.cookie_secure(), "asked for");
    }
}
