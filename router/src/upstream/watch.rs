//! Health watching: keeps a connector's entry in the catalog current.
//!
//! The watcher follows grpc.health.v1 `Watch`. On SERVING it reads the
//! connector's descriptors ([`super::discover`]) and publishes its tools; on
//! NOT_SERVING or a broken stream it marks the connector down, and withdraws its
//! tools once it has been down for longer than the grace period. A connector
//! without a health service counts as serving while it is reachable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::discover::discover;
use super::{Upstream, describe_status};
use crate::catalog::{ConnectorStatus, Features, ToolCatalog, tools_for_connector};

impl Upstream {
    /// Starts the watcher that keeps this connector's entry in `catalog` current.
    pub fn spawn_watcher(
        &self,
        catalog: Arc<ToolCatalog>,
        grace: Duration,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move { this.watch(catalog, grace, shutdown).await })
    }

    async fn watch(self, catalog: Arc<ToolCatalog>, grace: Duration, shutdown: CancellationToken) {
        let name = self.config.name.clone();
        let mut backoff = Duration::from_millis(50);
        let mut down_since: Option<Instant> = Some(Instant::now());
        let mut serving = false;
        loop {
            let mut client = HealthClient::new(self.channel.clone());
            let request = HealthCheckRequest {
                service: String::new(),
            };
            let watched = tokio::select! {
                () = shutdown.cancelled() => return,
                r = client.watch(request) => r,
            };
            match watched {
                Ok(response) => {
                    let mut stream = response.into_inner();
                    loop {
                        let grace_timer = grace_deadline(down_since, grace);
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = grace_timer => {
                                withdraw_after_grace(&catalog, &name, grace);
                                down_since = None;
                                continue;
                            }
                            next = stream.next() => match next {
                                Some(Ok(update)) => {
                                    if update.status() == ServingStatus::Serving {
                                        if !serving {
                                            serving = self.on_serving(&catalog).await;
                                            if serving {
                                                down_since = None;
                                                backoff = Duration::from_millis(50);
                                            } else {
                                                // The descriptors could not be read (a replica
                                                // went away mid-way): watch again after the
                                                // backoff, which retries the discovery too
                                                // (and grows while it keeps failing, so a
                                                // connector with broken descriptors is not
                                                // asked for them in a tight loop).
                                                break;
                                            }
                                        }
                                    } else {
                                        if serving || !matches!(catalog.status(&name), Some((ConnectorStatus::NotServing, _))) {
                                            tracing::warn!(connector = %name, status = update.status().as_str_name(), "connector not serving");
                                        }
                                        serving = false;
                                        backoff = Duration::from_millis(50);
                                        down_since.get_or_insert_with(Instant::now);
                                        catalog.set_status(&name, ConnectorStatus::NotServing);
                                    }
                                }
                                Some(Err(status)) => {
                                    self.on_down(&catalog, &mut serving, &mut down_since, describe_status(&status));
                                    break;
                                }
                                None => {
                                    self.on_down(&catalog, &mut serving, &mut down_since, "health stream ended".into());
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(status) if status.code() == Code::Unimplemented => {
                    // No health service: treat reachable as serving and poll.
                    if !serving {
                        serving = self.on_serving(&catalog).await;
                        if serving {
                            down_since = None;
                        }
                    }
                    backoff = Duration::from_secs(5);
                }
                Err(status) => {
                    self.on_down(
                        &catalog,
                        &mut serving,
                        &mut down_since,
                        describe_status(&status),
                    );
                }
            }
            let grace_timer = grace_deadline(down_since, grace);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
                () = grace_timer => {
                    withdraw_after_grace(&catalog, &name, grace);
                    down_since = None;
                }
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    fn on_down(
        &self,
        catalog: &ToolCatalog,
        serving: &mut bool,
        down_since: &mut Option<Instant>,
        reason: String,
    ) {
        if *serving {
            tracing::warn!(connector = %self.config.name, %reason, "connector went away");
        } else {
            tracing::debug!(connector = %self.config.name, %reason, "connector unreachable");
        }
        *serving = false;
        down_since.get_or_insert_with(Instant::now);
        catalog.set_status(&self.config.name, ConnectorStatus::Unreachable(reason));
    }

    /// Reads descriptors and publishes tools; returns whether that worked.
    async fn on_serving(&self, catalog: &ToolCatalog) -> bool {
        let name = &self.config.name;
        match discover(self.channel.clone(), &self.limits).await {
            Ok((pool, services)) => {
                let tools =
                    tools_for_connector(name, &self.config.prefix, &pool, &services, &self.limits);
                tracing::info!(connector = %name, tools = tools.tools.len(), hidden = tools.hidden.len(), withheld = tools.withheld.len(), services = ?services, "connector serving, catalog refreshed");
                catalog.publish(name, tools, Features::of(&services));
                true
            }
            Err(error) => {
                tracing::warn!(connector = %name, %error, "cannot read connector descriptors");
                catalog.set_status(
                    name,
                    ConnectorStatus::Unreachable(format!("reflection failed: {error}")),
                );
                false
            }
        }
    }
}

async fn grace_deadline(down_since: Option<Instant>, grace: Duration) {
    match down_since {
        Some(since) => {
            tokio::time::sleep_until(tokio::time::Instant::from_std(since + grace)).await
        }
        None => std::future::pending().await,
    }
}

fn withdraw_after_grace(catalog: &ToolCatalog, name: &str, grace: Duration) {
    if let Some((status, _)) = catalog.status(name)
        && status != ConnectorStatus::Serving
    {
        tracing::warn!(connector = %name, grace = ?grace, "connector down past the grace period, tools withdrawn");
        catalog.withdraw(name);
    }
}
