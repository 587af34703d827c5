//! The listener: one connection per node that hears the other nodes' signals
//! (`LISTEN`) and competes for leadership (a session advisory lock).
//!
//! It runs on a thread of its own. It waits for notifications up to [`TICK`] at a time,
//! sending no query meanwhile. A node that does not lead tries the leader lock once per
//! tick, so leadership passes within a tick of the leader's connection closing (the
//! server notices a vanished machine by TCP keepalives within about ten seconds). When
//! the connection breaks, the node stops leading, says every signal once (whatever was
//! missed is looked at again), and connects anew.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use tokio::sync::{broadcast, watch};

use super::{CHANNEL, LEADER_LOCK, LOCK_SPACE};
use crate::StoreError;
use crate::cluster::{Cluster, Signal};

/// How long the listener waits for notifications between looks at leadership.
const TICK: Duration = Duration::from_secs(5);

/// How long it waits before connecting again after its connection broke.
const RECONNECT: Duration = Duration::from_secs(1);

/// Stops the listener thread when dropped.
pub(super) struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Starts the listener on its own connection from `config`. It listens before this
/// returns, so no signal committed after the store opened is missed.
pub(super) fn start(config: postgres::Config) -> Result<(Cluster, Running), StoreError> {
    let (signals, _) = broadcast::channel(64);
    let (leading, watching) = watch::channel(false);
    let stop = Arc::new(AtomicBool::new(false));
    let listener = Listener {
        config,
        signals: signals.clone(),
        leading,
        stop: Arc::clone(&stop),
    };
    let first = listener.connect()?;
    std::thread::Builder::new()
        .name(String::from("store-listener"))
        .spawn(move || listener.run(first))
        .map_err(|error| StoreError::Connect(format!("cannot start the listener: {error}")))?;
    Ok((
        Cluster {
            signals,
            leading: watching,
        },
        Running(stop),
    ))
}

struct Listener {
    config: postgres::Config,
    signals: broadcast::Sender<Signal>,
    leading: watch::Sender<bool>,
    stop: Arc<AtomicBool>,
}

impl Listener {
    fn run(self, first: Client) {
        let mut client = Some(first);
        while !self.stop.load(Ordering::Relaxed) {
            let listened = match client.take() {
                Some(client) => self.listen(client),
                None => self.connect().and_then(|client| self.listen(client)),
            };
            if let Err(error) = listened {
                tracing::warn!(%error, "The store's listener lost its connection; connecting again.");
            }
            self.leading.send_replace(false);
            for signal in Signal::ALL {
                let _ = self.signals.send(signal);
            }
            if !self.stop.load(Ordering::Relaxed) {
                std::thread::sleep(RECONNECT);
            }
        }
    }

    /// A new connection, listening on the store's channel.
    fn connect(&self) -> Result<Client, StoreError> {
        let mut client = self
            .config
            .connect(NoTls)
            .map_err(|error| StoreError::Connect(error.to_string()))?;
        // So that the server notices within seconds when this machine vanishes, and
        // lets another node lead.
        client.batch_execute(
            "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3",
        )?;
        let channel: String = client
            .query_one(&format!("SELECT {CHANNEL}"), &[])?
            .try_get(0)?;
        client.batch_execute(&format!("LISTEN \"{}\"", channel.replace('"', "\"\"")))?;
        Ok(client)
    }

    /// Listens on `client` until it breaks or the store stops.
    fn listen(&self, mut client: Client) -> Result<(), StoreError> {
        while !self.stop.load(Ordering::Relaxed) {
            if !*self.leading.borrow() {
                let won: bool = client
                    .query_one(
                        &format!("SELECT pg_try_advisory_lock({LOCK_SPACE}, {LEADER_LOCK})"),
                        &[],
                    )?
                    .try_get(0)?;
                if won {
                    tracing::info!(
                        "This node leads: it runs the scheduler, the bus dispatcher, alerts and retention."
                    );
                    self.leading.send_replace(true);
                }
            }
            let mut notifications = client.notifications();
            let mut heard = notifications.timeout_iter(TICK);
            while let Some(notification) = heard.next()? {
                if let Some(signal) = Signal::parse(notification.payload()) {
                    let _ = self.signals.send(signal);
                }
            }
        }
        Ok(())
    }
}
