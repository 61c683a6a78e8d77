//! Builds the HTTP server from configuration and runs it until a shutdown signal, then drains.
//!
//! `Server::bind` returns the server unstarted with its real address, so tests run the real application on
//! port 0 in-process.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::app::{App, StartupError};
use crate::email::delivery::{self, DeliveryOptions};
use crate::email::smtp::Mailer;
use crate::http::{self, AppState};

pub struct Server {
    listener: TcpListener,
    router: axum::Router,
    services: App,
    /// Present when `smtp_host` is set: the delivery worker runs alongside the server.
    mailer: Option<Mailer>,
}

impl Server {
    /// Everything a first request needs is in place before the port is bound: in particular the revoked
    /// access tokens are loaded, so no revoked token is ever answered active after a restart.
    pub async fn bind(services: App) -> Result<Self, StartupError> {
        let config = services.config.clone();
        let mailer = match &config.smtp {
            Some(smtp) => Some(Mailer::new(smtp, config.smtp_from.clone()).map_err(|e| {
                StartupError::Setting {
                    setting: "LATCHKEY_SMTP_HOST",
                    message: format!("cannot set up SMTP: {e}"),
                }
            })?),
            None => None,
        };
        services.passwords.warm_up();
        let deps: http::Deps = std::sync::Arc::new(services.clone());
        let provider = crate::oauth::provider::Provider::start(deps.clone());
        if let Err(e) = provider.load_revocations().await {
            // Not fatal: introspection loads the set itself (or answers 503) and /readyz stays 503 until
            // the background refresh succeeds.
            tracing::warn!(error = %e, "could not load revoked access tokens at startup");
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|e| StartupError::Setting {
                    setting: "LATCHKEY_LISTEN",
                    message: format!("cannot listen on {}: {e}", config.listen),
                })?;
        let router = http::router(AppState {
            deps,
            provider,
            write_probe: Default::default(),
        });
        Ok(Self {
            listener,
            router,
            services,
            mailer,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then stops accepting and gives in-flight requests up to the
    /// configured grace period to finish. The email delivery worker (when SMTP is configured) runs
    /// alongside and stops with the server.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let grace = Duration::from_secs(self.services.config.shutdown_grace_secs);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stop_rx_for_server = stop_rx.clone();
        let email_worker = self.mailer.map(|mailer| {
            delivery::spawn(
                self.services.clone(),
                self.services.email_wakeup.clone(),
                mailer,
                DeliveryOptions::default(),
                stop_rx.clone(),
            )
        });
        let limits = http::connections::ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.services.config.header_read_timeout_secs),
            keep_alive_idle: Duration::from_secs(self.services.config.keep_alive_idle_secs),
            write_stall: Duration::from_secs(self.services.config.request_timeout_secs),
            max_connections: http::connections::max_connections(
                self.services.config.max_connections,
            ),
        };
        let serve = async move {
            http::connections::serve(self.listener, self.router, limits, stop_rx_for_server).await;
            Ok::<(), std::io::Error>(())
        };
        let signal = async move {
            shutdown.await;
            tracing::info!(
                grace_secs = grace.as_secs(),
                "shutting down: draining in-flight requests"
            );
            let _ = stop_tx.send(true);
        };
        tokio::spawn(signal);
        let mut stop_rx_for_deadline = stop_rx;
        let deadline = async move {
            let _ = stop_rx_for_deadline.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(grace).await;
        };
        let outcome = tokio::select! {
            result = serve => result,
            _ = deadline => {
                tracing::warn!("grace period over; closing remaining connections");
                Ok(())
            }
        };
        if let Some(mut worker) = email_worker {
            // It stops after the messages in hand; a send cut short here stays claimed until its lease
            // ends and is then retried, so nothing queued is lost.
            if outcome.is_err()
                || tokio::time::timeout(grace.max(Duration::from_secs(1)), &mut worker)
                    .await
                    .is_err()
            {
                worker.abort();
            }
        }
        outcome?;
        self.services.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
