//! `hookd-bench`: runs a scenario against the already-built `hookd` binary and prints a
//! table and one JSON line per report. See the README's "Performance" section.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use hookd_bench::{Options, Scenario};

#[derive(Debug, Parser)]
#[command(
    name = "hookd-bench",
    about = "Benchmarks the real hookd binary through its public API",
    after_help = "Sizes: ingest = requests per variant (20,000); throughput = deliveries per \
                  variant (100,000); fifo = deliveries (50,000); latency = events (30,000); isolation = events per run \
                  (6,000); recovery = pending deliveries (100,000); scale = surveys, 10 \
                  webhooks each (1,000)."
)]
struct Cli {
    /// Which scenario to run.
    #[arg(value_enum)]
    scenario: Scenario,
    /// The scenario's size (see below); default: the scenario's full size.
    #[arg(long)]
    size: Option<u64>,
    /// The hookd binary [default: `hookd` beside this executable, i.e. target/release/hookd].
    #[arg(long)]
    hookd: Option<PathBuf>,
    /// Concurrent API clients in closed-loop phases.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Events per second of the open-loop scenarios [default: latency 1000, isolation 200].
    #[arg(long)]
    rate: Option<u64>,
    /// HOOKD_DELIVERY_TIMEOUT_MS in the isolation runs (the hanging receiver holds twice that).
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Extra setting for every hookd started, KEY=VALUE (repeatable), e.g. HOOKD_MAX_IN_FLIGHT=64.
    #[arg(long = "server-env", value_parser = parse_setting)]
    server_env: Vec<(String, String)>,
    /// Longest any one phase may take, in seconds, before the scenario gives up.
    #[arg(long, default_value_t = 600)]
    deadline_s: u64,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    Ok((key.to_owned(), value.to_owned()))
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hookd-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let hookd = match cli.hookd {
        Some(path) => {
            hookd_bench::check_hookd(&path)?;
            path
        }
        None => hookd_bench::default_hookd()?,
    };
    let options = Options {
        size: cli.size,
        concurrency: cli.concurrency,
        rate: cli.rate,
        timeout_ms: cli.timeout_ms,
        server_env: cli.server_env,
        deadline: Duration::from_secs(cli.deadline_s),
        progress: !cli.quiet,
        ..Options::new(hookd)
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    // Print each scenario as it finishes: `all` takes a while, and one failure should not
    // hide the figures of the others.
    let mut failed = 0;
    for scenario in cli.scenario.expand() {
        match runtime.block_on(hookd_bench::run_one(scenario, &options)) {
            Ok(reports) => {
                for report in &reports {
                    println!("{}", report.table());
                }
                for report in &reports {
                    println!("{}", report.json_line());
                }
                println!();
            }
            Err(error) => {
                failed += 1;
                eprintln!("hookd-bench: {error:#}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} scenario(s) failed");
    }
    Ok(())
}
