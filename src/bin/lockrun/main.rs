//! `lockrun`: runs a command while holding a distributed lock on Redis,
//! like `flock(1)` across machines. `lockrun --help` says how; the README's
//! lockrun section has a crontab line and a systemd unit.
//!
//! ```sh
//! cargo install --path . --features cli
//! lockrun --key backup --wait 10 -- ./backup.sh
//! ```

#[cfg(unix)]
mod cli;
#[cfg(unix)]
mod group;
#[cfg(unix)]
mod lease;
mod nested;
#[cfg(unix)]
mod progress;
#[cfg(unix)]
mod redact;
#[cfg(unix)]
mod run;
#[cfg(unix)]
mod signals;
#[cfg(unix)]
mod status;
#[cfg(unix)]
mod watchdog;

use std::process::ExitCode;

#[cfg(unix)]
fn main() -> ExitCode {
    use clap::Parser;

    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    redact::remember(&raw, nested::secrets());
    let args = match cli::Args::try_parse_from(&raw) {
        Ok(args) => args,
        Err(e) => {
            use clap::error::ErrorKind;
            let text = redact::scrub(&e.render().to_string());
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                _ => {
                    eprint!("{text}");
                    if !text.contains("--help") {
                        eprintln!("\nFor more information, try '--help'.");
                    }
                    ExitCode::from(cli::EX_USAGE)
                }
            };
        }
    };
    if args.watchdog {
        return watchdog::run();
    }
    group::become_subreaper();
    // `block_on` runs lockrun's own future on this (main) thread, so the
    // command is forked from it and its PR_SET_PDEATHSIG, which follows the
    // forking thread, fires only when lockrun exits. The library's tasks
    // (renewal, a Redlock's nodes) run on the workers.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            redact::say(format!("cannot start: {e}"));
            return ExitCode::from(cli::EX_SOFTWARE);
        }
    };
    ExitCode::from(runtime.block_on(run::main(args)))
}

#[cfg(not(unix))]
fn main() -> ExitCode {
    eprintln!("lockrun: only Unix systems are supported (process groups and signals)");
    ExitCode::from(69)
}
