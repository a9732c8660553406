//! The subcommands behind `cosmoguard`, kept out of `main.rs` so they can be tested.

pub mod policy;

use std::io::{self, Write};
use std::path::Path;
use std::time::SystemTime;

use anyhow::Context as _;

use crate::config::{CheckOptions, Config};
use crate::upstream::signing::{MasterKey, format_date};

/// Arguments of `cosmoguard sign`.
#[derive(clap::Args, Debug)]
pub struct SignArgs {
    /// The account key (base64). Prefer --key-env: arguments are visible to other users.
    #[arg(long, required_unless_present = "key_env", conflicts_with = "key_env")]
    pub key: Option<String>,
    /// An environment variable that contains the account key.
    #[arg(long)]
    pub key_env: Option<String>,
    /// The HTTP method, such as GET or POST.
    #[arg(long)]
    pub verb: String,
    /// The resource type keyword (dbs, colls, docs, ...), empty for the account.
    #[arg(long, default_value = "")]
    pub resource_type: String,
    /// The resource link, such as dbs/ToDoList (no leading slash).
    #[arg(long, default_value = "")]
    pub resource_link: String,
    /// The x-ms-date value (RFC 1123, e.g. 'Thu, 27 Apr 2017 00:51:12 GMT'); now by default.
    #[arg(long)]
    pub date: Option<String>,
}

/// Runs the proxy. This thread's event loop accepts connections and runs the background
/// work: key and token refresh, policy reload and the admin listener. The connection
/// workers that serve requests each run their own event loop.
pub fn serve(config_path: &Path) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(crate::run::serve(config_path))
}

/// Checks a configuration and its policy; prints `OK` or every error found. With
/// `require_files` off, files missing on this machine are not errors, and a missing
/// policy file is skipped.
pub fn check(config_path: &Path, require_files: bool) -> anyhow::Result<()> {
    let options = CheckOptions { require_files };
    let config =
        Config::load_with(config_path, options).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let policy_path = config.policy_path();
    let policy_checked = require_files || policy_path.is_file();
    if policy_checked {
        crate::run::load_policy(&policy_path)?;
    }
    write_stdout(|out| {
        if policy_checked {
            writeln!(out, "{}: OK", policy_path.display())?;
        } else {
            writeln!(
                out,
                "{}: not found on this machine; not checked",
                policy_path.display()
            )?;
        }
        writeln!(out, "{}: OK", config_path.display())
    })
}

/// Prints the Authorization header value for one request.
pub fn sign(arguments: &SignArgs) -> anyhow::Result<()> {
    let key_text = match (&arguments.key, &arguments.key_env) {
        (Some(key), _) => key.clone(),
        (None, Some(variable)) => std::env::var(variable)
            .with_context(|| format!("environment variable {variable} is not set"))?,
        (None, None) => anyhow::bail!("pass --key or --key-env"),
    };
    let key = MasterKey::from_base64(&key_text)?;
    let date = arguments
        .date
        .clone()
        .unwrap_or_else(|| format_date(SystemTime::now()));
    let header = key.authorization(
        &arguments.verb,
        &arguments.resource_type,
        &arguments.resource_link,
        &date,
    );
    write_stdout(|out| writeln!(out, "{header}"))?;
    if arguments.date.is_none() {
        write_stderr(format_args!("x-ms-date: {date}"));
    }
    Ok(())
}

/// Writes a command's output to standard output and flushes it. A closed pipe is not an
/// error, because the reader (such as `head`) closed it after reading all it needed. The
/// command still returns its own result, so a failed check keeps its exit status.
pub(crate) fn write_stdout(
    write: impl FnOnce(&mut io::StdoutLock<'static>) -> io::Result<()>,
) -> anyhow::Result<()> {
    write_ignoring_broken_pipe(&mut io::stdout().lock(), write)
}

/// Writes one line to standard error. A failed write is dropped: standard error is where
/// failures are reported, so there is nowhere left to report one, and `eprintln!` would
/// panic on a closed pipe instead.
pub fn write_stderr(line: impl std::fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

fn write_ignoring_broken_pipe<W: Write>(
    out: &mut W,
    write: impl FnOnce(&mut W) -> io::Result<()>,
) -> anyhow::Result<()> {
    match write(out).and_then(|()| out.flush()) {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        result => Ok(result.context("failed to write to standard output")?),
    }
}

#[cfg(test)]
mod tests;
