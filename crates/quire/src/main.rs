//! `quire`: the one binary. `quire serve` runs the server; `quire migrate` brings the
//! database schema up to date and exits.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use quire_store::StoreOptions;

mod config;

use config::{CommonArgs, LogFormat, ServeArgs, Settings};

/// Quire: a self-hosted workspace where teams co-edit documents in real time and run AI
/// generation pipelines over them.
///
/// Settings come from built-in defaults, a TOML file (--config), QUIRE_* environment
/// variables and flags; each later source wins over the earlier ones.
#[derive(Parser)]
#[command(name = "quire", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: the REST API, event streams, metrics and the API reference at /api/docs
    Serve(ServeArgs),
    /// Apply pending database migrations and exit (serve also runs them on start)
    Migrate(CommonArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => Settings::for_serve(args).and_then(|s| run(s, true)),
        Command::Migrate(args) => Settings::for_common(args).and_then(|s| run(s, false)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(settings: &Settings) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log_filter).map_err(|e| {
        format!(
            "the log filter '{}' is not valid: {e}; try --log info",
            settings.log_filter
        )
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    match settings.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
    Ok(())
}

fn run(settings: Settings, serve: bool) -> Result<(), String> {
    init_logging(&settings)?;
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
        format!("cannot create the data directory {}: {e}; choose another with --data-dir or QUIRE_DATA_DIR", settings.data_dir.display())
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let options = StoreOptions { limits: settings.limits.clone(), max_connections: settings.db_max_connections };
        let store = quire_store::connect(&settings.database_url, options).await.map_err(|e| e.to_string())?;
        tracing::info!(data_dir = %settings.data_dir.display(), backend = store.backend(), url = %quire_store::redact_url(&settings.database_url), "database opened");
        store.migrate().await.map_err(|e| e.to_string())?;
        tracing::info!("migrations applied");
        if !serve {
            return Ok(());
        }
        let listener = tokio::net::TcpListener::bind(settings.addr).await.map_err(|e| {
            format!("cannot listen on {}: {e}; choose another address with --addr or QUIRE_ADDR", settings.addr)
        })?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(addr = %local, "Quire is listening on http://{local}");
        let app = quire_server::App::new(store.clone(), settings.server.clone());
        quire_server::serve(listener, app, shutdown_signal()).await.map_err(|e| format!("the server stopped: {e}"))?;
        store.close().await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
