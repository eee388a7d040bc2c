//! `hookwire channel`, local mode: the stdio MCP channel Claude Code spawns, over the project's
//! store, and, in one process of the project, the webhook listener.
//!
//! Two Claude Code sessions in one project each spawn this process with the same config. Each
//! takes a seat in the store (`local`, `local-2`, ...; see [`hookwire_core::delivery`]) and
//! receives every event of `channel.sources` as a subscriber of its own. The first to take the
//! project's listener lock listens for webhooks and runs the schedules; the others follow the
//! store, and the first of them to take the lock when its owner exits listens in its place
//! (on the same address: a tunnel in front keeps working).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookwire::registry;
use hookwire_core::channel;
use hookwire_core::config::Config;
use hookwire_core::delivery::{ListenerLock, Seat, StoreFeed};
use hookwire_core::diagnostics::ConfigErrors;
use hookwire_core::health::Probes;
use hookwire_core::pipeline::{self, Keep, Pipeline};
use hookwire_core::render::Templates;
use hookwire_core::store::{Store, Subscription};
use hookwire_core::tools::Toolbox;
use hookwire_core::{config, http, ingress, instructions};
use tokio::task::JoinHandle;

use super::jobs::Jobs;
use super::{
    connection_limits, not_started, open_store, runtime, server, stored_pipeline, unservable, Deadlines,
    Parts, Shutdown,
};
use crate::templates;

/// How long the store and the templates wait for the session's `initialize` answer.
const ANSWER_FIRST: Duration = Duration::from_millis(100);

/// How often a follower tries to take the listener over.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// What this process does about webhooks.
enum Role {
    /// It listens (and holds the project's listener lock).
    Owner(std::net::TcpListener, ListenerLock),
    /// Another process of the project listens; this one follows the store.
    Follower,
}

/// Takes the project's listener if no other process of it holds it. `Err` when the lock is
/// ours but the address is not: another program holds the port.
fn claim(store: &Path, addr: SocketAddr) -> Result<Role, String> {
    match ListenerLock::try_take(store).map_err(|e| e.to_string())? {
        None => Ok(Role::Follower),
        Some(lock) => match std::net::TcpListener::bind(addr) {
            Ok(l) => {
                l.set_nonblocking(true).map_err(|e| e.to_string())?;
                Ok(Role::Owner(l, lock))
            }
            Err(e) => Err(format!("cannot listen for webhooks on {addr}: {e}")),
        },
    }
}

/// The listener's parts, once this process owns it.
struct Listening {
    task: JoinHandle<std::io::Result<()>>,
    jobs: Jobs,
    _lock: ListenerLock,
}

/// Starts serving webhooks (and the probes) on `listener`, with the pipeline's jobs.
fn listen(
    listener: std::net::TcpListener,
    lock: ListenerLock,
    pipeline: &Arc<Pipeline>,
    store: &Arc<dyn Store>,
    subscription: &Subscription,
    shutdown: &Arc<Shutdown>,
) -> std::io::Result<Listening> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let bound = listener.local_addr()?;
    tracing::info!("listening on http://{bound}");
    let local = subscription.clone();
    let probes = Probes::new(
        store.clone(),
        Box::new(move |_| vec![local.clone()]),
        pipeline.config().metrics,
    );
    let mut app = ingress::router(pipeline.clone()).merge(probes.router());
    let console = &pipeline.config().console;
    if console.enabled && console.local {
        // Local mode does not reload its config: the pipeline in force is this one.
        let current = Arc::new(hookwire_core::arc_swap::ArcSwap::new(pipeline.clone()));
        let live = Arc::new(hookwire_core::console::LocalSession(subscription.clone()));
        app = app.merge(hookwire_core::console::Console::new(store.clone(), current, live, console).router());
    }
    let limits = connection_limits(&pipeline.config().limits);
    let task = tokio::spawn(http::serve(
        listener,
        None,
        app,
        limits,
        shutdown.stopping(),
        shutdown.deadlines().requests,
    ));
    Ok(Listening {
        task,
        jobs: Jobs::start(pipeline, store),
        _lock: lock,
    })
}

/// What the first event needs, opened while the session is answered.
struct Opened {
    store: Arc<dyn Store>,
    seat: Seat,
    pipeline: Arc<Pipeline>,
    feed: StoreFeed,
}

/// Opens the store, readies `seat` in it, and, once `compiling` has the templates, builds the
/// pipeline and the seat's feed. `Err`: what went wrong and how to fix it (`fix` for the
/// config's own errors), with the store closed again.
fn open(
    config: Config,
    compiling: std::thread::JoinHandle<Result<Templates, ConfigErrors>>,
    seat: Seat,
    subscription: &Subscription,
    fix: &str,
) -> Result<Opened, (String, String)> {
    const DAMAGED: &str = "check that the store file is readable and not damaged";
    let store = open_store(&config).map_err(|e| {
        (
            e,
            "make the store's folder writable, or set store.path in the config to a folder that is"
                .to_owned(),
        )
    })?;
    if let Err(e) = seat.settle(&config.store.path, store.as_ref()) {
        store.close(Duration::from_secs(1));
        return Err((e.to_string(), DAMAGED.to_owned()));
    }
    let built = match compiling.join().expect("template compiler panicked") {
        Ok(templates) => stored_pipeline(config, templates, &store, Keep::ChannelSources)
            .map_err(|e| (e, DAMAGED.to_owned()))
            .and_then(|pipeline| {
                StoreFeed::open(store.clone(), subscription.clone(), Some(&seat.mark))
                    .map(|feed| (pipeline, feed))
                    .map_err(|e| {
                        (
                            e.to_string(),
                            "check that the store's folder is writable".to_owned(),
                        )
                    })
            }),
        Err(e) => Err((e.to_string(), fix.to_owned())),
    };
    match built {
        Ok((pipeline, feed)) => Ok(Opened {
            store,
            seat,
            pipeline,
            feed,
        }),
        Err(e) => {
            seat.release(store.as_ref());
            store.close(Duration::from_secs(1));
            Err(e)
        }
    }
}

/// `hookwire channel --config PATH [--listen ADDR]`.
///
/// `initialize` is answered once the config is read and the port and the seat are taken; then
/// the store opens and the templates compile, and events start once both are done and the
/// handshake has settled ([`channel::SETTLE`]). What fails after the answer reaches the
/// session as a `hookwire.not_started` notification.
pub fn run(config_path: PathBuf, listen_on: Option<SocketAddr>) -> ExitCode {
    let fix = format!(
        "correct {} as each line says (`hookwire check --config {}` lists every problem; secrets come from the \
         environment Claude Code is started in, or from secret_file)",
        config_path.display(),
        config_path.display()
    );
    let config = match config::load(&config_path, &registry()) {
        Ok(c) => c,
        Err(e) => return unservable(&e.to_string(), &fix),
    };
    // `channel` never serves TLS itself, whatever `tls:` says.
    if let Some(s) = config.sources.iter().find(|s| s.adapter.verifier().needs_tls()) {
        return unservable(
            &format!(
                "source `{}` authenticates with Basic auth, and `hookwire channel` listens on plain HTTP",
                s.name
            ),
            "put a TLS-terminating proxy in front and set `behind_tls: true` on the source, or run it under `hookwire serve` with `tls:`",
        );
    }
    let addr = listen_on.unwrap_or(config.listen);
    if config.metrics {
        hookwire_core::metrics::install();
    }
    if config.store.backend != hookwire_core::config::StoreBackend::Sqlite {
        return unservable(
            "store.backend: nats is for `hookwire serve` replicas; a local channel keeps its own SQLite file",
            "remove `store.backend` and `store.nats` from this config, or run `hookwire channel --gateway URL` \
             against the replicas",
        );
    }
    let store_path = config.store.path.clone();
    // The project's lock files live beside the store: its folder comes first.
    if let Some(dir) = store_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return unservable(
                &format!("cannot create the store's folder {}: {e}", dir.display()),
                "make the store's folder writable, or set store.path in the config to a folder that is",
            );
        }
    }
    let role = match claim(&store_path, addr) {
        Ok(r) => r,
        Err(e) => {
            return unservable(
                &e,
                &format!("stop the program that holds {addr}, or give this config another `listen:` address"),
            );
        }
    };
    let seat = match Seat::take(&store_path) {
        Ok(s) => s,
        Err(e) => return unservable(&e.to_string(), "close the other sessions of this project"),
    };
    let subscription = Subscription {
        name: seat.name.clone(),
        sources: config.channel.sources.clone(),
    };
    // The tools are those `channel.permissions` grants, with the credentials of `tools:`.
    let session = hookwire_core::tools::Session {
        subscriber: seat.name.clone(),
        sources: config.channel.sources.clone(),
        permissions: config.channel.permissions.clone(),
    };
    let rt = runtime();
    let (toolbox, latch) = Toolbox::opening(session, &config.tools, rt.handle().clone());
    let instructions = instructions::with_tools(&instructions::generate(&config), toolbox.granted());
    let chan = channel::start_with_tools(
        std::io::stdin(),
        std::io::stdout(),
        Box::new(channel::NoEvents),
        server(instructions),
        Some(Arc::new(toolbox)),
    );
    // Compiling the templates is most of a start's CPU, and opening the store most of its
    // waiting: both begin once the session has its answer, which they would otherwise hold
    // up on a busy or single core. A client that does not ask at once waits a moment.
    chan.answered(ANSWER_FIRST);
    let compiling = {
        let (path, folders) = (config_path.clone(), pipeline::TemplateFolders::of(&config));
        std::thread::spawn(move || pipeline::compile(&path, &folders, templates::TEMPLATES))
    };
    let Opened {
        store,
        seat,
        pipeline,
        feed,
    } = match open(config, compiling, seat, &subscription, &fix) {
        Ok(o) => o,
        Err((problem, fix)) => {
            // Tool calls waiting for the store fail now, rather than wait for ever.
            drop(latch);
            return not_started(&rt, chan, &problem, &fix);
        }
    };
    chan.feed(Box::new(feed));
    latch.open(store.clone());
    rt.block_on(async move {
        let shutdown = Shutdown::new(Deadlines::CHANNEL, true);
        let listening: Arc<Mutex<Option<Listening>>> = Arc::new(Mutex::new(None));
        match role {
            Role::Owner(listener, lock) => {
                match listen(listener, lock, &pipeline, &store, &subscription, &shutdown) {
                    Ok(l) => *listening.lock().expect("listener poisoned") = Some(l),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot serve webhooks");
                        shutdown.begin("the webhook listener failed");
                    }
                }
            }
            Role::Follower => {
                tracing::info!(
                    seat = %seat.name,
                    "another session of this project listens for webhooks; following its store and taking over when it exits"
                );
                tokio::spawn(follow(
                    store_path.clone(),
                    addr,
                    pipeline.clone(),
                    store.clone(),
                    subscription.clone(),
                    shutdown.clone(),
                    listening.clone(),
                ));
            }
        }
        tokio::select! {
            _ = chan.closed() => shutdown.begin("client closed the connection"),
            _ = shutdown.requested() => {}
            _ = listener_ended(&listening) => shutdown.begin("the webhook listener stopped"),
        }
        tracing::info!(reason = shutdown.requested().await, seat = %seat.name, "shutting down");
        let owned = listening.lock().expect("listener poisoned").take();
        let (listener, jobs) = match owned {
            Some(l) => (Some(l.task), Some(l.jobs)),
            None => (None, None),
        };
        // The seat goes back before the store closes: an extra seat is forgotten through it.
        seat.release(store.as_ref());
        shutdown
            .finish(Parts {
                jobs,
                listener,
                channel: Some(chan),
                store: Some(store),
                ..Parts::default()
            })
            .await;
        ExitCode::SUCCESS
    })
    // The stdin reader thread may still be blocked in read(2); exiting ends it.
}

/// Resolves if this process's listener task ends on its own (it failed).
async fn listener_ended(listening: &Arc<Mutex<Option<Listening>>>) {
    loop {
        let finished = listening
            .lock()
            .expect("listener poisoned")
            .as_ref()
            .is_some_and(|l| l.task.is_finished());
        if finished {
            return;
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// A follower's loop: takes the listener over as soon as the project's lock is free.
async fn follow(
    store_path: PathBuf,
    addr: SocketAddr,
    pipeline: Arc<Pipeline>,
    store: Arc<dyn Store>,
    subscription: Subscription,
    shutdown: Arc<Shutdown>,
    listening: Arc<Mutex<Option<Listening>>>,
) {
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.requested() => return,
        }
        let (listener, lock) = match claim(&store_path, addr) {
            Ok(Role::Follower) => continue,
            Ok(Role::Owner(l, lock)) => (l, lock),
            Err(e) => {
                tracing::warn!(error = %e, "the listener's owner exited but this process cannot take its address; retrying");
                continue;
            }
        };
        // What the owner accepted while this process followed is a repeat here too.
        if let Err(e) = pipeline.seed_replay(store.as_ref(), std::time::SystemTime::now()) {
            tracing::error!(error = %e, "cannot read the delivery ids the previous owner accepted");
        }
        match listen(listener, lock, &pipeline, &store, &subscription, &shutdown) {
            Ok(l) => {
                tracing::info!(%addr, "took the webhook listener over from the session that exited");
                *listening.lock().expect("listener poisoned") = Some(l);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot serve webhooks");
                shutdown.begin("the webhook listener failed");
            }
        }
        return;
    }
}
