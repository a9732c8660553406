//! The `cosmoguard` command: parses arguments and starts the chosen subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

// Every request allocates headers, records and buffers; jemalloc serves them with less CPU
// than glibc malloc (bench/RESULTS.md has the comparison).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(
    name = "cosmoguard",
    version,
    about = "Identity-aware reverse proxy for Azure Cosmos DB"
)]
struct Cli {
    /// Log line format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "COSMOGUARD_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the proxy.
    Serve {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a configuration file and the policy it names, and report every error.
    Check {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Do not report files that are missing on this machine, for configurations
        /// written for another machine (a container's mounted certificates and keys).
        #[arg(long)]
        skip_missing_files: bool,
    },
    /// Print the master-key Authorization header value for one request.
    Sign(cosmoguard::cli::SignArgs),
    /// Check, explain and import policies.
    #[command(subcommand)]
    Policy(cosmoguard::cli::policy::PolicyCommand),
}

/// Does nothing: the system allocator has no background thread to start.
#[cfg(not(feature = "jemalloc"))]
fn return_freed_memory_in_background() {}

/// Starts jemalloc's background thread. jemalloc otherwise returns freed pages to the
/// system only while the process allocates, so the buffers of a burst of connections that
/// went idle would stay resident.
#[cfg(feature = "jemalloc")]
fn return_freed_memory_in_background() {
    if let Err(error) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(%error, "Failed to start jemalloc's background thread, so freed memory returns to the system only while the proxy allocates");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve { config } => {
            return_freed_memory_in_background();
            cosmoguard::cli::serve(&config)
        }
        Command::Check {
            config,
            skip_missing_files,
        } => cosmoguard::cli::check(&config, !skip_missing_files),
        Command::Sign(arguments) => cosmoguard::cli::sign(&arguments),
        Command::Policy(command) => cosmoguard::cli::policy::run(&command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            cosmoguard::cli::write_stderr(format_args!("error: {error:#}"));
            ExitCode::FAILURE
        }
    }
}

/// Logs go to standard error, because standard output is the default audit log.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COSMOGUARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
