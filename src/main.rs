//! The `messenger` server binary: parse the configuration, then run an administration command
//! or start and serve until signalled.

use clap::Parser;
use messenger::server::{
    app::{init_tracing, shutdown_signal, Application},
    config::Config,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cfg = Config::parse();
    init_tracing(&cfg.server.log);
    if let Some(command) = cfg.command.take() {
        return messenger::server::admin::run(&cfg.store.database, command).await;
    }
    let app = Application::build(cfg).await?;
    tracing::info!("Messenger is listening on http://{}", app.addr());
    app.run_until_stopped(shutdown_signal()).await
}
