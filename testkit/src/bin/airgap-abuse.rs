//! `airgap-abuse`: runs the hostile-client scenario of `scripts/bench-abuse` against an
//! HTTPS server on 127.0.0.1 (idle TLS connections, slow-header and silent clients, a
//! flood of URL spellings) and times a normal client's requests meanwhile. Prints
//! `key value` lines. Raises its own RLIMIT_NOFILE soft limit to the hard limit.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airgap_testkit::abuse::{self, Target};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// The server (a 127.0.0.1 address).
    #[arg(long)]
    addr: SocketAddr,
    /// PEM CA certificate of the server.
    #[arg(long)]
    ca: PathBuf,
    /// TLS server name.
    #[arg(long, default_value = "localhost")]
    name: String,
    /// URL path of a file the normal client fetches (and the spellings spell).
    #[arg(long)]
    path: String,
    /// The file on disk that path serves (bodies are compared with it).
    #[arg(long)]
    expect: PathBuf,
    /// Idle TLS connections held open.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Slow clients (half slow-header TLS, half silent TCP).
    #[arg(long, default_value_t = 200)]
    slow: usize,
    /// Distinct spellings of the path requested once each.
    #[arg(long, default_value_t = 4000)]
    spellings: usize,
    /// Requests of the normal client (one every 200 ms).
    #[arg(long, default_value_t = 50)]
    normal: usize,
    /// Seconds the whole run lasts at most.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Seconds given to opening the idle connections before the normal client starts.
    #[arg(long, default_value_t = 15)]
    ramp: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Ok((soft, hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        if soft < hard {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard)?;
        }
    }
    let target = Target {
        addr: args.addr,
        name: args.name.clone(),
        ca_pem: std::fs::read_to_string(&args.ca)?,
    };
    let expect = Arc::new(std::fs::read(&args.expect)?);
    let start = Instant::now();
    let until = start + Duration::from_secs(args.seconds);
    let idle = tokio::spawn({
        let target = target.clone();
        let n = args.idle;
        async move { abuse::idle_tls(&target, n, until).await }
    });
    let slow = tokio::spawn({
        let target = target.clone();
        let n = args.slow;
        async move { abuse::slow_headers(&target, n, Duration::from_millis(500), until).await }
    });
    tokio::time::sleep(Duration::from_secs(args.ramp)).await;
    let flood = tokio::spawn({
        let target = target.clone();
        let urls = abuse::spellings(&args.path, args.spellings);
        let expect = expect.clone();
        async move { abuse::spelling_flood(&target, urls, expect, until).await }
    });
    let normal = abuse::normal_client(
        &target,
        &args.path,
        &expect,
        args.normal,
        Duration::from_millis(200),
    )
    .await?;
    let flood = flood.await??;
    let idle = idle.await??;
    let slow = slow.await??;
    let mut times: Vec<f64> = normal
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    times.sort_by(f64::total_cmp);
    let failed: Vec<&String> = normal.iter().filter_map(|r| r.as_ref().err()).collect();
    println!("normal_ok {}", times.len());
    println!("normal_failed {}", failed.len());
    if let Some(first) = failed.first() {
        println!("normal_first_error {first}");
    }
    println!(
        "normal_p50_ms {:.1}",
        times.get(times.len() / 2).copied().unwrap_or(f64::NAN)
    );
    println!(
        "normal_max_ms {:.1}",
        times.last().copied().unwrap_or(f64::NAN)
    );
    println!("idle_peak_open {}", idle.peak_open);
    println!("idle_handshakes {}", idle.handshakes);
    println!("idle_closed_by_server {}", idle.closed_by_server);
    println!("idle_failures {}", idle.failures);
    println!("slow_cut {}", slow.cut);
    println!("slow_completed {}", slow.completed);
    println!("slow_longest_cut_s {:.1}", slow.longest_cut_secs);
    println!("slow_failures {}", slow.failures);
    println!("spellings_ok {}", flood.ok);
    println!("spellings_failed {}", flood.failed);
    println!("elapsed_s {:.1}", start.elapsed().as_secs_f64());
    Ok(())
}
