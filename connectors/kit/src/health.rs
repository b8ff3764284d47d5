//! The connector's serving status, as seen through grpc.health.v1.
//!
//! A [`Health`] is handed to the code that knows whether the connector can do its
//! job (the database pool, the upstream auth check) and flipped there. It sets the
//! overall status (service name `""`, what the router and container health checks
//! watch) together with the status of each of the connector's own services.

use std::sync::{Arc, RwLock};

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// Handle to flip the connector's health; cheap to clone.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    /// The connector's own services; shared by every clone, so a handle taken
    /// before a service was added still reports it.
    services: Arc<RwLock<Vec<String>>>,
    /// Whether the connector has set a status yet; the lock also orders writes so
    /// the server's initial NOT_SERVING never lands after the connector's first word.
    set_by_connector: Arc<tokio::sync::Mutex<bool>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl Health {
    pub(crate) fn new(reporter: HealthReporter) -> Self {
        Self {
            reporter,
            services: Arc::default(),
            set_by_connector: Arc::new(tokio::sync::Mutex::new(false)),
        }
    }

    pub(crate) fn add_service(&self, service: &str) {
        if let Ok(mut services) = self.services.write() {
            services.push(service.to_owned());
        }
    }

    /// The connector's own services (those added to its server).
    pub fn services(&self) -> Vec<String> {
        self.services
            .read()
            .map(|services| services.clone())
            .unwrap_or_default()
    }

    /// Sets NOT_SERVING unless the connector already set a status.
    pub(crate) async fn initialize(&self) {
        let set = self.set_by_connector.lock().await;
        if !*set {
            self.write(ServingStatus::NotServing).await;
        }
    }

    /// The connector can serve requests.
    pub async fn set_serving(&self) {
        self.set(ServingStatus::Serving).await;
    }

    /// The connector cannot serve requests now (unconfigured, upstream down).
    pub async fn set_not_serving(&self) {
        self.set(ServingStatus::NotServing).await;
    }

    /// Sets the overall status and that of every service of the connector.
    pub async fn set(&self, status: ServingStatus) {
        let mut set = self.set_by_connector.lock().await;
        *set = true;
        self.write(status).await;
    }

    async fn write(&self, status: ServingStatus) {
        self.reporter.set_service_status("", status).await;
        for service in self.services() {
            self.reporter.set_service_status(&service, status).await;
        }
    }

    /// Sets the status of one service only (e.g. a read-only variant), leaving the rest.
    pub async fn set_service(&self, service: &str, status: ServingStatus) {
        self.reporter.set_service_status(service, status).await;
    }
}

#[cfg(test)]
mod tests {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus as Wire;
    use tonic_health::pb::health_server::Health as _;
    use tonic_health::server::HealthService;

    use super::*;

    #[tokio::test]
    async fn a_handle_taken_before_a_service_was_added_still_reports_it() {
        let reporter = HealthReporter::new();
        let service = HealthService::from_health_reporter(reporter.clone());
        let health = Health::new(reporter);
        let early = health.clone();
        health.add_service("pkg.v1.Svc");
        early.set_serving().await;
        for name in ["", "pkg.v1.Svc"] {
            let status = service
                .check(tonic::Request::new(HealthCheckRequest {
                    service: name.to_owned(),
                }))
                .await
                .unwrap_or_else(|e| panic!("{name:?}: {e}"))
                .into_inner()
                .status;
            assert_eq!(status, Wire::Serving as i32, "{name:?}");
        }
    }
}
