//! The `messenger` server binary: parse the configuration, then run an administration command
//! or start and serve until signalled. A failure to start is one line on stderr (what failed,
//! and why, each cause after a colon) and exit status 1, never a backtrace.

use clap::Parser;
use messenger::server::{
    app::{init_tracing, shutdown_signal, Application},
    config::Config,
};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("messenger: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let mut cfg = Config::parse();
    init_tracing(&cfg.server.log, cfg.server.log_format);
    if let Some(command) = cfg.command.take() {
        return messenger::server::admin::run(&cfg.store, command).await;
    }
    let app = Application::build(cfg).await?;
    tracing::info!("Messenger is listening on http://{}", app.addr());
    app.run_until_stopped(shutdown_signal()).await
}
