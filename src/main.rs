use clap::{Parser, Subcommand};

use canopy::app::Application;
use canopy::config::Config;
use canopy::store::Store;

#[derive(Parser)]
#[command(
    name = "canopy",
    version,
    about = "Live org-chart canvas backend for AI agent workspaces"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP and WebSocket (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Write a consistent copy of the SQLite database (DATABASE_URL) to PATH while it may be
    /// serving, then exit. PATH must not exist. PostgreSQL: use pg_dump (see the README).
    Backup {
        /// Where the copy goes (a new file).
        path: std::path::PathBuf,
    },
    /// Manage workspace and global secrets.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Manage people's API keys (the first admin key of a fresh database is made here).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Issue a key and print it (shown only this once).
    Create {
        /// Whose key it is.
        #[arg(long)]
        name: String,
        /// viewer, editor or admin.
        #[arg(long)]
        role: String,
        /// RFC 3339 time after which the key stops working.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List every key (never the keys themselves).
    List,
    /// Revoke a key by id: its sessions end, its sockets close.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Re-wrap every secret's data key under SECRETS_ENCRYPTION_KEY (the new key), reading rows
    /// wrapped by SECRETS_ENCRYPTION_KEY_PREVIOUS (the old one). Resumable: run it again after an
    /// interruption.
    RotateKey {
        /// Rows re-wrapped per transaction.
        #[arg(long, default_value_t = canopy::secrets::rotation::ROTATION_BATCH_SIZE)]
        batch_size: usize,
    },
}

fn main() {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("canopy: {e}");
            std::process::exit(2);
        }
    };
    canopy::telemetry::init_tracing(config.log_format);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config),
        Command::Migrate => migrate(config),
        Command::Backup { path } => backup(config, &path),
        Command::Secrets {
            command: SecretsCommand::RotateKey { batch_size },
        } => canopy::secrets::rotation::rotate_key_command(&config, batch_size),
        Command::Keys { command } => {
            use canopy::commands::keys::cli;
            match command {
                KeysCommand::Create {
                    name,
                    role,
                    expires_at,
                } => cli::create(&config, &name, &role, expires_at.as_deref()),
                KeysCommand::List => cli::list(&config),
                KeysCommand::Revoke { id } => cli::revoke(&config, &id),
            }
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %format!("{e:#}"), "canopy stopped with an error");
        eprintln!("canopy: {e:#}");
        std::process::exit(1);
    }
}

fn migrate(config: Config) -> anyhow::Result<()> {
    let store = Store::open(config.database_url.clone(), 1);
    let applied = store.migrate_blocking()?;
    tracing::info!(count = applied.len(), migrations = ?applied, "migrations applied");
    Ok(())
}

fn backup(config: Config, path: &std::path::Path) -> anyhow::Result<()> {
    let report = canopy::store::backup::backup_sqlite(
        &config.database_url,
        path,
        config.database_busy_timeout,
    )?;
    tracing::info!(path = %report.path.display(), bytes = report.bytes, "backup written");
    Ok(())
}

fn serve(config: Config) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config).await?;
        let stop = app.handle();
        actix_web::rt::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received: closing sockets, finishing requests");
            stop.stop().await;
        });
        app.run_until_stopped().await?;
        tracing::info!("canopy stopped");
        Ok(())
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler cannot fail on unix");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
