//! Builds the application: state, background jobs, the HTTP server bound to its listener (port 0
//! works: the real port is read back).

#![warn(missing_docs)]

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle, Service};
use actix_web::middleware::from_fn;
use actix_web::{web, App};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::error::AppResult;
use crate::events::{Backplane, Relay};
use crate::liveness::{Liveness, MemoryLiveness, RedisLiveness};
use crate::realtime::hub::CloseReason;
use crate::realtime::Hub;
use crate::store::batcher::Batcher;
use crate::store::{events as stream, workspaces, LiveEvent, Store, StoreError, Tx};
use crate::{http, jobs, telemetry};

/// How long in-flight requests get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long a connection whose response is done may wait for the client to hang up before it
/// is closed: after a WebSocket close handshake (RFC 6455 §7.1.1: the server closes the TCP
/// connection first, and well-behaved clients wait for it), and after an early response to a
/// request whose body was not read. actix-web's default is 1 s: every closed WebSocket held its
/// connection that long, and a graceful shutdown (which counts open connections once a second)
/// waited a second more.
///
/// Not lower than this: actix-http computes the deadline from its cached clock, which is updated
/// every 500 ms, and a deadline already in the past when the timer is armed never wakes the
/// connection (it then stays open until the client leaves). 700 ms leaves 200 ms of worker
/// stall before that can happen, and lets a shutdown end at the first check, about 1 s in.
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_millis(700);

/// Who a command acts for (see [`AppState::execute_as`]).
#[derive(Clone, Debug)]
pub enum ActAs {
    /// A person (or Canopy itself).
    Actor(crate::domain::people::Actor),
    /// A workspace's agent.
    Agent(uuid::Uuid),
}

impl ActAs {
    /// The caller of a workspace route: a person the route admitted, or else the workspace's
    /// agent (its own token, or open mode's tokenless bootstrap).
    pub fn caller(req: &actix_web::HttpRequest, workspace: uuid::Uuid) -> ActAs {
        match crate::http::principal::of_request(req) {
            Some(person) if person.kind == crate::domain::people::ActorType::User => {
                ActAs::Actor(person.actor())
            }
            _ => ActAs::Agent(workspace),
        }
    }
}

/// Everything a request handler needs, shared by every worker.
pub struct AppState {
    /// Every setting, as read at start.
    pub config: Arc<Config>,
    /// The database (SQLite or PostgreSQL) behind its pool.
    pub store: Store,
    /// Carries committed events (and drag previews) to every instance's Relay.
    pub backplane: Backplane,
    /// This instance's sockets.
    pub hub: Arc<Hub>,
    /// The stream's identity: a client whose `epoch` differs must reload.
    pub epoch: String,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Agents' heartbeat deadlines (memory, or Redis in cluster mode).
    pub liveness: Liveness,
    /// Batches the instance's writes: commands (group commit) and quiet heartbeats.
    pub batcher: Batcher,
    /// Agent tokens already checked, for the heartbeat fast path only.
    pub heartbeat_tokens: crate::http::auth::HeartbeatTokens,
    /// The secrets keyring, or none (secret writes answer 503).
    pub secrets: crate::secrets::Secrets,
    /// Which hosts and pages may address this server (`http::boundary`).
    pub boundary: crate::http::boundary::Boundary,
    /// The A2A proxy's outbound client: the only place Canopy calls out.
    pub a2a: crate::a2a::A2aClient,
    /// Request rate limits (`http::rate_limit`).
    pub limiter: Arc<crate::http::rate_limit::Limiter>,
    /// Set when a stop begins: WebSocket upgrades are refused from then on.
    pub drain: crate::http::drain::Drain,
    /// Revocations and presence changes, to and from every instance.
    pub control: Arc<crate::events::control::ControlBus>,
    /// Who has a canvas open (`realtime::presence`).
    pub presence: Arc<crate::realtime::presence::Presence>,
    /// Throttles `api_keys.last_used_at` writes.
    pub key_use: crate::http::principal::KeyUse,
}

impl AppState {
    /// Runs a command: one transaction that changes state and appends its events. Concurrent
    /// commands share a transaction (group commit); the committed events go to the Backplane in
    /// seq order, and local sockets get them back through the Relay like every other
    /// instance's (invariant 3).
    pub async fn execute<T, F>(&self, command: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> AppResult<T> + Send + 'static,
    {
        let (value, _events) = self.batcher.execute(command).await?;
        Ok(value)
    }

    /// [`AppState::execute`] on someone's behalf: every event the command appends (and every
    /// activity row it writes) names `who` as its actor.
    pub async fn execute_as<T, F>(&self, who: ActAs, command: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> AppResult<T> + Send + 'static,
    {
        self.execute(move |tx| {
            let actor = match who {
                ActAs::Actor(actor) => actor,
                // An agent is named after its workspace, read in the same transaction.
                ActAs::Agent(id) => {
                    let name = workspaces::find_row(tx.conn(), id)?
                        .map(|w| w.name)
                        .unwrap_or_default();
                    crate::domain::people::Actor::agent(id, name)
                }
            };
            let previous = tx.set_actor(actor);
            let outcome = command(tx);
            tx.set_actor(previous);
            outcome
        })
        .await
    }

    /// Runs a read on the blocking pool.
    pub async fn read<T, F>(&self, query: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut crate::store::DbConnection) -> AppResult<T> + Send + 'static,
    {
        self.store.run(query).await
    }
}

/// A built server: bound to its port, its pipeline and jobs started, not yet serving until
/// [`Application::run_until_stopped`] is awaited.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    shutdown: watch::Sender<bool>,
}

impl Application {
    /// Opens the store (migrating it), connects Redis when configured, starts the write
    /// batcher, the Relay, the drag-preview and presence tasks and the lease-guarded jobs, and
    /// binds the listener (`config.port` 0: any free port, see [`Application::port`]).
    ///
    /// # Errors
    /// The database or Redis cannot be reached or migrated, the secrets keyring is invalid, or
    /// the port cannot be bound.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let config = Arc::new(config);
        let secrets = crate::secrets::Secrets::from_config(&config)?;
        secrets.log_mode();
        let store = Store::open_with_busy_timeout(
            config.database_url.clone(),
            config.database_pool_size,
            config.database_busy_timeout,
        );
        let migrate_store = store.clone();
        let applied =
            tokio::task::spawn_blocking(move || migrate_store.migrate_blocking()).await??;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "database migrated");
        }

        // The head first, then the hierarchy: events in between are applied again by the
        // Relay, and applying them twice is harmless.
        let (head, parents) = store
            .run(|c| Ok::<_, StoreError>((stream::stream_head(c)?, workspaces::parent_map(c)?)))
            .await?;
        let hub = Hub::with_capacity(parents, head.last_seq, config.ws_queue_capacity);

        let (signals_tx, signals_rx) = mpsc::unbounded_channel();
        let backplane = match &config.redis_url {
            None => Backplane::Local(signals_tx),
            Some(url) => Backplane::Redis(
                crate::events::redis::RedisBackplane::connect(
                    url,
                    &config.redis_key_prefix,
                    signals_tx,
                )
                .await
                .map_err(|e| anyhow::anyhow!("cannot connect to Redis: {e}"))?,
            ),
        };
        let (liveness, expirations) = match &config.redis_url {
            None => {
                let (memory, expirations) = MemoryLiveness::start();
                (Liveness::Memory(memory), expirations)
            }
            Some(url) => {
                let (redis, expirations) = RedisLiveness::connect(url, &config.redis_key_prefix)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot connect to Redis: {e}"))?;
                (Liveness::Redis(redis), expirations)
            }
        };
        let control = match &config.redis_url {
            None => crate::events::control::ControlBus::local(),
            Some(url) => crate::events::control::ControlBus::connect(url, &config.redis_key_prefix)
                .await
                .map_err(|e| anyhow::anyhow!("cannot connect to Redis: {e}"))?,
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (published, to_publish) = mpsc::unbounded_channel();
        let batcher = Batcher::start(store.clone(), published);
        tokio::spawn(publish_batches(backplane.clone(), to_publish));
        tokio::spawn(crate::realtime::volatile::run(
            Arc::clone(&hub),
            backplane.clone(),
            shutdown_rx.clone(),
        ));
        tokio::spawn(crate::realtime::volatile::deliver(
            Arc::clone(&hub),
            config.drag_preview_tick,
            shutdown_rx.clone(),
        ));
        tokio::spawn(
            Relay::new(store.clone(), Arc::clone(&hub)).run(signals_rx, shutdown_rx.clone()),
        );
        tokio::spawn(crate::realtime::trim::run(
            Arc::clone(&hub),
            shutdown_rx.clone(),
        ));

        let presence = crate::realtime::presence::Presence::start(
            Arc::clone(&hub),
            Arc::clone(&control),
            config.instance_id.clone(),
            config.presence_ttl,
            shutdown_rx.clone(),
        );
        let state = web::Data::new(AppState {
            config: Arc::clone(&config),
            store: store.clone(),
            backplane,
            hub,
            epoch: head.epoch,
            metrics: telemetry::prometheus_handle(),
            liveness,
            batcher,
            heartbeat_tokens: Default::default(),
            secrets,
            boundary: crate::http::boundary::Boundary::from_config(&config),
            a2a: crate::a2a::A2aClient::new(
                crate::a2a::AddressPolicy {
                    allow_private: config.a2a.allow_private,
                },
                config.a2a.max_response_bytes,
            )?,
            limiter: Arc::new(crate::http::rate_limit::Limiter::new(&config)),
            drain: Default::default(),
            control,
            presence,
            key_use: Default::default(),
        });
        tokio::spawn(act_on_control(
            state.clone().into_inner(),
            shutdown_rx.clone(),
        ));
        tokio::spawn(recheck_socket_keys(
            state.clone().into_inner(),
            shutdown_rx.clone(),
        ));
        tokio::spawn(http::rate_limit::prune(
            Arc::clone(&state.limiter),
            shutdown_rx.clone(),
        ));
        jobs::spawn_all(state.clone().into_inner(), expirations, shutdown_rx);

        let listener = TcpListener::bind((config.host, config.port))?;
        let port = listener.local_addr()?.port();
        let server_state = state.clone();
        let server = http::transport::serve(
            move || {
                App::new()
                    .app_data(server_state.clone())
                    .configure(http::configure)
                    // Innermost: a refused request (limits, 401/403) claims no key, and keys
                    // are scoped by the principal resolved outside it.
                    .wrap(from_fn(http::idempotency::middleware))
                    // Inside the limits: a refused request costs no credential lookup.
                    .wrap(from_fn(http::principal::enforce))
                    .wrap(from_fn(http::rate_limit::limit))
                    .wrap(from_fn(http::drain::refuse_upgrades_while_draining))
                    .wrap(http::cors(&server_state.config))
                    // Outside CORS: a preflight from a foreign page is refused in JSON here.
                    .wrap(from_fn(http::boundary::enforce))
                    .wrap_fn(|req, srv| {
                        let started = std::time::Instant::now();
                        let method = req.method().to_string();
                        let response = srv.call(req);
                        async move {
                            let response = response.await?;
                            telemetry::record_http(&response, &method, started.elapsed());
                            Ok(response)
                        }
                    })
                    // Outermost: every answer, refusals included, carries its request id.
                    .wrap(from_fn(http::request_id::assign))
            },
            listener,
            // Signals are the binary's to handle; in-flight requests get SHUTDOWN_GRACE.
            &http::transport::ServerOptions {
                workers: config.workers,
                shutdown_timeout: SHUTDOWN_GRACE,
                head_timeout: config.http_head_timeout,
                client_disconnect_timeout: CLIENT_DISCONNECT_TIMEOUT,
            },
        )?;

        tracing::info!(
            port,
            mode = config.mode(),
            database = store.backend_name(),
            instance_id = %config.instance_id,
            seq = head.last_seq,
            "canopy listening"
        );
        Ok(Application {
            port,
            server,
            state,
            shutdown,
        })
    }

    /// The port the server listens on (the real one when the configuration said 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The state every handler shares (tests read the store and hub through it).
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone().into_inner()
    }

    /// A handle that stops the server gracefully from another task (see [`StopHandle`]).
    pub fn handle(&self) -> StopHandle {
        StopHandle {
            server: self.server.handle(),
            state: self.state(),
            shutdown: self.shutdown.clone(),
        }
    }

    /// Serves until the server is stopped (through [`Application::handle`]).
    ///
    /// # Errors
    /// The HTTP server failed.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Stops an application gracefully: it stops accepting, sockets are closed with 1001 (clients
/// reconnect elsewhere with `since`), in-flight requests finish, background jobs stop.
#[derive(Clone)]
pub struct StopHandle {
    server: ServerHandle,
    state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
}

impl StopHandle {
    /// Stops the server; returns when its connections are closed (at most `SHUTDOWN_GRACE`).
    ///
    /// The order matters: a canvas told 1001 reconnects at once, and must not land here again.
    /// 1. Upgrades on connections already open are refused (503, see `http::drain`).
    /// 2. Accepting stops (`pause`), then `stop` closes the listener (new connections are
    ///    refused; one that reached the kernel's queue in between is reset, never served),
    ///    closes idle keep-alive connections and lets in-flight requests finish.
    /// 3. Only then are sockets closed with 1001; one that registers later is closed too.
    ///
    /// actix checks its workers' open connections once a second, so the server ends at the
    /// first check after the last in-flight request and WebSocket close handshake are done
    /// (about 1 s when nothing else is running).
    pub async fn stop(&self) {
        self.state.drain.begin();
        self.server.pause().await;
        let stopped = self.server.stop(true);
        // The server task may share this thread (it does under `main`): give it its turn to
        // hand the stop to the acceptor before any client hears 1001.
        tokio::task::yield_now().await;
        self.state.hub.close_all(CloseReason::GoingAway);
        let _ = self.shutdown.send(true);
        stopped.await;
        // Requests are done: say goodbye to Redis instead of dropping the connections.
        self.state.backplane.quit().await;
        self.state.liveness.quit().await;
        self.state.control.quit().await;
    }
}

impl AppState {
    /// Stops liveness tracking for workspaces that are gone.
    pub async fn liveness_disarm(&self, ids: &[uuid::Uuid]) {
        for id in ids {
            self.liveness.disarm(*id).await;
        }
    }
}

/// Acts on control messages from every instance (this one included) until shutdown.
async fn act_on_control(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    use crate::events::control::ControlMessage;
    use tokio::sync::broadcast::error::RecvError;
    let mut messages = state.control.subscribe();
    loop {
        let message = tokio::select! {
            m = messages.recv() => m,
            _ = shutdown.changed() => return,
        };
        match message {
            Ok(ControlMessage::KeyRevoked { key_id }) => {
                let closed = state.hub.close_key(key_id);
                tracing::info!(%key_id, closed, "revoked key's sockets closed");
            }
            Ok(ControlMessage::SessionEnded { session }) => {
                let closed = state.hub.close_session(&session);
                tracing::info!(closed, "ended session's sockets closed");
            }
            Ok(ControlMessage::PresenceChanged { .. }) => {}
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "control messages missed");
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// How often an instance checks the keys behind its open sockets against the database: the
/// safety net under the revocation message (lost on a Redis outage; never sent by `canopy keys
/// revoke` to an embedded server) and what closes the sockets of a key that expired.
pub const SOCKET_KEY_RECHECK_INTERVAL: Duration = Duration::from_secs(5);

async fn recheck_socket_keys(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SOCKET_KEY_RECHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let (keys, sessions) = (state.hub.owner_keys(), state.hub.owner_sessions());
        if keys.is_empty() && sessions.is_empty() {
            continue;
        }
        let dead = state
            .store
            .run(move |c| {
                let now = chrono::Utc::now();
                Ok::<_, StoreError>((
                    crate::store::keys::dead_among(c, &keys, now)?,
                    crate::store::keys::dead_sessions_among(c, &sessions, now)?,
                ))
            })
            .await;
        match dead {
            Ok((dead_keys, dead_sessions)) => {
                for key_id in dead_keys {
                    let closed = state.hub.close_key(key_id);
                    tracing::info!(%key_id, closed, "sockets of a dead key closed");
                }
                for session in dead_sessions {
                    let closed = state.hub.close_session(&session);
                    tracing::info!(closed, "sockets of an ended session closed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not recheck the keys of open sockets"),
        }
    }
}

/// Hands committed batches to the Backplane one at a time, so they go out in seq order. A
/// failed publish loses nothing: the events are committed, and every Relay's head check picks
/// them up within a second.
async fn publish_batches(
    backplane: Backplane,
    mut batches: mpsc::UnboundedReceiver<Vec<LiveEvent>>,
) {
    while let Some(events) = batches.recv().await {
        let count = events.len();
        if let Err(e) = backplane.publish(events).await {
            metrics::counter!("canopy_backplane_publish_failures_total").increment(1);
            tracing::warn!(error = %e, count, "publish failed; relays will catch up from the database");
        }
    }
}
