//! `cosmoguard-bench`: the servers and drivers that `bench/run.sh` starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use cosmoguard_bench::client::Target;
use cosmoguard_bench::{backend, idle, idp, load, mint, passthrough, policy_gen, stream, tls};
use http::{HeaderName, HeaderValue, Method};
use jsonwebtoken::Algorithm;

#[derive(Parser, Debug)]
#[command(
    name = "cosmoguard-bench",
    about = "Servers and load drivers for the Cosmoguard benchmarks"
)]
struct Cli {
    /// Tokio worker threads.
    #[arg(long, global = true, default_value_t = 2)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the Cosmos-shaped backend.
    Backend {
        #[arg(long)]
        address: SocketAddr,
        /// Serve TLS with this certificate chain (PEM); needs --tls-key.
        #[arg(long, requires = "tls_key")]
        tls_certificate: Option<PathBuf>,
        #[arg(long)]
        tls_key: Option<PathBuf>,
        /// Size in bytes of the streamed feed response.
        #[arg(long, default_value_t = 256 * 1024 * 1024)]
        stream_bytes: u64,
    },
    /// Forward HTTP/1.1 to an upstream with no authentication, policy or logging of requests.
    Passthrough {
        /// The socket address to listen on.
        #[arg(long)]
        address: SocketAddr,
        /// The upstream's socket address, reached over plain HTTP/1.1.
        #[arg(long)]
        upstream: SocketAddr,
    },
    /// Serve the OIDC discovery document, the JWKS and a managed-identity token endpoint.
    Idp {
        #[arg(long)]
        address: SocketAddr,
        /// RSA private key (PKCS#8 PEM) published with kid `bench-rs256`.
        #[arg(long)]
        rsa_key: PathBuf,
        /// P-256 private key (PKCS#8 PEM) published with kid `bench-es256`.
        #[arg(long)]
        ec_key: PathBuf,
        /// The value the managed-identity endpoint expects in `x-identity-header`.
        #[arg(long, default_value = "bench-identity-header")]
        identity_header: String,
    },
    /// Sign access tokens, one per output line.
    Mint {
        #[arg(long)]
        key: PathBuf,
        /// RS256 or ES256.
        #[arg(long)]
        algorithm: String,
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        audience: String,
        #[arg(long, default_value = policy_gen::BENCH_SUBJECT)]
        subject: String,
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Token lifetime in seconds.
        #[arg(long, default_value_t = 4 * 3600)]
        lifetime: i64,
        #[arg(long)]
        output: PathBuf,
    },
    /// Write a generated policy of N rules (Cosmoguard TOML, or Cedar with --cedar).
    Policy {
        #[arg(long)]
        rules: usize,
        #[arg(long)]
        cedar: bool,
    },
    /// Send load and print a JSON report with latency percentiles.
    Load {
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long, default_value = "GET")]
        method: String,
        #[arg(long)]
        path: String,
        /// A file of tokens, one per line; each is sent once, and the run ends when they
        /// run out.
        #[arg(long)]
        tokens: Option<PathBuf>,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Requests per second (open loop); without it, closed loop.
        #[arg(long)]
        rate: Option<f64>,
        /// Seconds to run.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
    },
    /// Open keep-alive connections, one request each, and hold them idle.
    Idle {
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long)]
        path: String,
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Connections opened at once.
        #[arg(long, default_value_t = 200)]
        batch: usize,
        /// Maximum hold in seconds; a line on standard input ends it sooner.
        #[arg(long, default_value_t = 30.0)]
        hold: f64,
    },
    /// Stream one large body through and print a JSON report.
    Stream {
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(long)]
        path: String,
        /// POST a body of this many bytes; without it, GET and read the response.
        #[arg(long)]
        upload_bytes: Option<u64>,
    },
}

#[derive(Args, Debug)]
struct ConnectionArgs {
    /// The server's socket address.
    #[arg(long)]
    address: SocketAddr,
    /// Connect with TLS, trusting only this CA (PEM).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// The TLS server name.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Speak HTTP/2 (prior knowledge without TLS, ALPN with it).
    #[arg(long)]
    http2: bool,
    /// The Host header.
    #[arg(long, default_value = "localhost")]
    host: String,
    /// An extra request header, `name: value`; repeatable.
    #[arg(long = "header")]
    headers: Vec<String>,
}

impl ConnectionArgs {
    fn target(&self) -> anyhow::Result<Target> {
        let tls = match &self.tls_ca {
            None => None,
            Some(ca) => {
                let name = rustls_pki_types::ServerName::try_from(self.server_name.clone())
                    .context("invalid --server-name")?;
                Some((tls::client_config(ca, self.http2)?, name))
            }
        };
        Ok(Target {
            address: self.address,
            tls,
            http2: self.http2,
        })
    }

    fn headers(&self) -> anyhow::Result<Vec<(HeaderName, HeaderValue)>> {
        self.headers
            .iter()
            .map(|line| {
                let (name, value) = line.split_once(':').with_context(|| {
                    format!("invalid --header {line:?}: expected `name: value`")
                })?;
                Ok((
                    HeaderName::try_from(name.trim())?,
                    HeaderValue::try_from(value.trim())?,
                ))
            })
            .collect()
    }
}

fn parse_algorithm(name: &str) -> anyhow::Result<Algorithm> {
    match name {
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        other => anyhow::bail!("unsupported algorithm {other:?}; use RS256 or ES256"),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Backend {
            address,
            tls_certificate,
            tls_key,
            stream_bytes,
        } => {
            let acceptor = match (tls_certificate, tls_key) {
                (Some(certificate), Some(key)) => Some(tokio_rustls::TlsAcceptor::from(
                    tls::server_config(&certificate, &key)?,
                )),
                _ => None,
            };
            backend::run(address, acceptor, backend::BackendOptions { stream_bytes }).await
        }
        Command::Passthrough { address, upstream } => passthrough::run(address, upstream).await,
        Command::Idp {
            address,
            rsa_key,
            ec_key,
            identity_header,
        } => {
            let keys = vec![
                mint::SigningKey::from_pem_file(&rsa_key, Algorithm::RS256, "bench-rs256")?,
                mint::SigningKey::from_pem_file(&ec_key, Algorithm::ES256, "bench-es256")?,
            ];
            idp::run(address, keys, identity_header).await
        }
        Command::Mint {
            key,
            algorithm,
            issuer,
            audience,
            subject,
            count,
            lifetime,
            output,
        } => {
            let algorithm = parse_algorithm(&algorithm)?;
            let key_id = if algorithm == Algorithm::RS256 {
                "bench-rs256"
            } else {
                "bench-es256"
            };
            let key = mint::SigningKey::from_pem_file(&key, algorithm, key_id)?;
            let spec = mint::TokenSpec {
                issuer,
                audience,
                subject,
                lifetime_seconds: lifetime,
            };
            let tokens = mint::mint_many(&key, &spec, count)?;
            let mut text = tokens.join("\n");
            text.push('\n');
            std::fs::write(&output, text)
                .with_context(|| format!("cannot write {}", output.display()))
        }
        Command::Policy { rules, cedar } => {
            let description = policy_gen::describe(rules);
            let text = if cedar {
                policy_gen::to_cedar(&description)
            } else {
                policy_gen::to_toml(&description)
            };
            print!("{text}");
            Ok(())
        }
        Command::Load {
            connection,
            method,
            path,
            tokens,
            connections,
            rate,
            duration,
        } => {
            let tokens = match tokens {
                None => None,
                Some(file) => {
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read tokens {}", file.display()))?;
                    Some(Arc::new(
                        text.lines()
                            .map(str::to_owned)
                            .filter(|line| !line.is_empty())
                            .collect(),
                    ))
                }
            };
            let options = load::LoadOptions {
                target: connection.target()?,
                method: Method::from_bytes(method.as_bytes())?,
                path,
                host: connection.host.clone(),
                headers: connection.headers()?,
                tokens,
                connections: connections.max(1),
                rate,
                duration: Duration::from_secs_f64(duration),
            };
            let report = load::run(options).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Idle {
            connection,
            path,
            connections,
            batch,
            hold,
        } => {
            idle::run(idle::IdleOptions {
                target: connection.target()?,
                connections,
                batch,
                path,
                host: connection.host.clone(),
                headers: connection.headers()?,
                hold: Duration::from_secs_f64(hold),
            })
            .await
        }
        Command::Stream {
            connection,
            path,
            upload_bytes,
        } => {
            let direction = match upload_bytes {
                Some(bytes) => stream::Direction::Upload(bytes),
                None => stream::Direction::Download,
            };
            let report = stream::run(stream::StreamOptions {
                target: connection.target()?,
                path,
                host: connection.host.clone(),
                headers: connection.headers()?,
                direction,
            })
            .await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
    }
}
