//! The `xlb` command line: parses arguments and calls the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use xlb::config::{self, Protocol};
use xlb::control::{diff, explain};

/// The allocator of the `xlb` binary (the Maglev bench sets it too). The control plane
/// rebuilds Maglev tables (256 KiB each at the default size) on reloads and health changes;
/// glibc's malloc handed the freed memory back to the kernel, so every build page-faulted its
/// table back in (about 85 faults, 0.1 ms of a 1 ms build, several times that on a busy
/// host). mimalloc keeps freed pages for the next build. The dataplane does not allocate per
/// packet, so it is not affected.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// xlb: a userspace AF_XDP L4 load balancer with Maglev hashing and SCTP multihoming.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the dataplane; SIGHUP reloads the file, SIGTERM/SIGINT stop it.
    Run {
        /// The service table.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Show NUMA nodes, cores, interface locality and the worker plan.
    Topology {
        /// The service table whose interfaces and workers to plan for.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Validate a service table; prints FILE:LINE:COL: message on error.
    Check {
        /// The service table.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Show the service and backend a flow maps to, by the dataplane's own code.
    Explain {
        /// The service table.
        #[arg(short, long)]
        config: PathBuf,
        /// tcp, udp or sctp.
        protocol: ProtocolArg,
        /// Client address and port, e.g. 198.18.0.1:40000 or [2001:db8::1]:40000.
        src: SocketAddr,
        /// VIP and port.
        dst: SocketAddr,
    },
    /// What a reload from OLD to NEW would change: backends and Maglev slots per service,
    /// and with --url the live SCTP associations that would end.
    Diff {
        /// The running table.
        old: PathBuf,
        /// The table to load.
        new: PathBuf,
        /// Metrics endpoint of the running xlb, to count its live SCTP associations.
        #[arg(long)]
        url: Option<String>,
    },
    /// Print the JSON Schema of the service table, for editors.
    Schema,
    /// Live view of a running dataplane's metrics: rates per worker, service and backend.
    Stats {
        /// The metrics endpoint.
        #[arg(long, default_value = xlb::control::stats::DEFAULT_URL)]
        url: String,
        /// Refresh period in seconds.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Stop after this many refreshes (default: run until interrupted).
        #[arg(long)]
        count: Option<u64>,
    },
    /// Generate traffic over AF_XDP and/or receive it: rates, loss, latency.
    Pktgen(xlb::pktgen::PktgenArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum ProtocolArg {
    Tcp,
    Udp,
    Sctp,
}

impl From<ProtocolArg> for Protocol {
    fn from(p: ProtocolArg) -> Self {
        match p {
            ProtocolArg::Tcp => Protocol::Tcp,
            ProtocolArg::Udp => Protocol::Udp,
            ProtocolArg::Sctp => Protocol::Sctp,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xlb: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr; `RUST_LOG` filters (default `info`).
fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config } => xlb::control::supervisor::run(&config)?,
        Command::Topology { config } => print!("{}", xlb::runtime::describe(config.as_deref())?),
        Command::Check { config } => {
            let table = config::load(&config)?;
            let backends: usize = table.services.iter().map(|s| s.backends.len()).sum();
            println!(
                "{}: ok ({} services, {backends} backends)",
                config.display(),
                table.services.len()
            );
        }
        Command::Explain {
            config,
            protocol,
            src,
            dst,
        } => {
            let table = config::load(&config)?;
            println!("{}", explain::explain(&table, protocol.into(), src, dst)?);
            println!("{}", xlb::control::announce::describe(&table, dst.ip()));
        }
        Command::Diff { old, new, url } => {
            let (old, new) = (config::load(&old)?, config::load(&new)?);
            let live = url
                .map(|url| xlb::control::stats::live_associations(&url))
                .transpose()?;
            for service in diff::diff(&old, &new, live.as_ref())? {
                println!("{service}");
            }
        }
        Command::Schema => println!("{}", config::json_schema()),
        Command::Stats {
            url,
            interval,
            count,
        } => {
            let interval = std::time::Duration::try_from_secs_f64(interval)?;
            xlb::control::stats::run_stats(&url, interval, count, &mut std::io::stdout())?;
        }
        Command::Pktgen(args) => {
            xlb::pktgen::run(&args)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
