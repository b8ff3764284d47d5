//! The connector's serving status, as seen through grpc.health.v1.
//!
//! A [`Health`] is handed to the code that knows whether the connector can do its
//! job (the database pool, the upstream auth check) and flipped there. It sets the
//! overall status (service name `""`, what the router and container health checks
//! watch) together with the status of each of the connector's own services.

use std::sync::Arc;

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// Handle to flip the connector's health; cheap to clone.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    services: Arc<Vec<String>>,
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
            services: Arc::new(Vec::new()),
            set_by_connector: Arc::new(tokio::sync::Mutex::new(false)),
        }
    }

    pub(crate) fn with_services(&self, services: Vec<String>) -> Self {
        Self {
            reporter: self.reporter.clone(),
            services: Arc::new(services),
            set_by_connector: self.set_by_connector.clone(),
        }
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
        for service in self.services.iter() {
            self.reporter.set_service_status(service, status).await;
        }
    }

    /// Sets the status of one service only (e.g. a read-only variant), leaving the rest.
    pub async fn set_service(&self, service: &str, status: ServingStatus) {
        self.reporter.set_service_status(service, status).await;
    }
}
