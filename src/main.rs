//! The `messenger` server binary: parse the configuration, start, serve until signalled.

use clap::Parser;
use messenger::server::{
    config::Config,
    startup::{init_tracing, shutdown_signal, Application},
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = Config::parse();
    init_tracing(&cfg.log);
    let app = Application::build(cfg).await?;
    tracing::info!("Messenger is listening on http://{}", app.addr());
    app.run_until_stopped(shutdown_signal()).await
}
