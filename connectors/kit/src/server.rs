//! A tonic server with the connector's services, grpc.health.v1 and server reflection.
//!
//! Reflection advertises exactly the connector's own services (plus health and
//! reflection, for grpcurl), with descriptors that keep their source comments: this
//! is how the router learns the connector's tools. Both reflection v1 and v1alpha
//! are served so older grpcurl versions work too.

use std::convert::Infallible;
use std::future::Future;

use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::transport::server::TcpIncoming;

use crate::health::Health;

type HttpRequest = tonic::codegen::http::Request<Body>;

/// Why a connector server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The descriptors registered for reflection could not be decoded.
    #[error("invalid reflection descriptors: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The descriptors could not be adjusted to the connector's configuration.
    #[error("cannot hide the writing tools: {0}")]
    Descriptors(#[from] crate::descriptors::DescriptorError),
    /// The gRPC server failed.
    #[error("grpc server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Default bound on draining calls and streams after the shutdown signal.
pub const DEFAULT_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// `SHUTDOWN_GRACE` (seconds), or the default; a malformed value is reported and ignored.
fn shutdown_grace_from_env() -> std::time::Duration {
    match crate::env::seconds("SHUTDOWN_GRACE", DEFAULT_SHUTDOWN_GRACE) {
        Ok(grace) => grace,
        Err(error) => {
            tracing::warn!(%error, default = ?DEFAULT_SHUTDOWN_GRACE, "using the default shutdown grace period");
            DEFAULT_SHUTDOWN_GRACE
        }
    }
}

/// Builder for a connector's gRPC server.
pub struct ConnectorServer {
    name: String,
    routes: RoutesBuilder,
    descriptor_sets: Vec<&'static [u8]>,
    health: Health,
    health_service:
        tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>,
    shutdown_grace: std::time::Duration,
    /// Services whose methods with side effects are hidden from the tool catalog.
    read_only: Vec<String>,
}

impl std::fmt::Debug for ConnectorServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorServer")
            .field("name", &self.name)
            .field("services", &self.health.services())
            .finish_non_exhaustive()
    }
}

impl ConnectorServer {
    /// A server for connector `name` (used in logs), serving the services in the
    /// encoded descriptor set `descriptors` (e.g. `switchboard_proto::FILE_DESCRIPTOR_SET`).
    pub fn new(name: impl Into<String>, descriptors: &'static [u8]) -> Self {
        let reporter = tonic_health::server::HealthReporter::new();
        let health_service = tonic_health::pb::health_server::HealthServer::new(
            tonic_health::server::HealthService::from_health_reporter(reporter.clone()),
        );
        Self {
            name: name.into(),
            routes: RoutesBuilder::default(),
            descriptor_sets: vec![descriptors],
            health: Health::new(reporter),
            health_service,
            shutdown_grace: shutdown_grace_from_env(),
            read_only: Vec::new(),
        }
    }

    /// Offers the agent only the reading tools of `service` (its full name, e.g.
    /// `switchboard.database.v1.Database`): every method whose `idempotency_level`
    /// is not NO_SIDE_EFFECTS is marked hidden in the descriptors served over
    /// reflection, so the router leaves it out of the tool catalog. For a
    /// deployment whose configuration refuses writes; the methods stay in the gRPC
    /// service, where the connector's own policy must still refuse them.
    pub fn hide_writing_tools(mut self, service: impl Into<String>) -> Self {
        self.read_only.push(service.into());
        self
    }

    /// How long in-flight calls and open streams may take to finish after the
    /// shutdown signal (`SHUTDOWN_GRACE` seconds, default 10; Kubernetes allows
    /// 30 s before SIGKILL).
    pub fn with_shutdown_grace(mut self, grace: std::time::Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Registers another encoded descriptor set for reflection (e.g. a test proto).
    pub fn with_descriptors(mut self, descriptors: &'static [u8]) -> Self {
        self.descriptor_sets.push(descriptors);
        self
    }

    /// Adds one of the connector's gRPC services; it is advertised over reflection
    /// and its health follows [`Health`].
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: tower::Service<HttpRequest, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.routes.add_service(service);
        self.health.add_service(S::NAME);
        self
    }

    /// The handle that flips this connector's health. The connector starts
    /// NOT_SERVING; the code that knows it can work calls [`Health::set_serving`].
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Serves on `listener` until `shutdown` completes, then drains in-flight calls.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let mut routes = self.routes;
        let mut v1 = tonic_reflection::server::Builder::configure();
        let mut v1alpha = tonic_reflection::server::Builder::configure();
        let served = served_descriptors(&self.name, &self.descriptor_sets, &self.read_only)?;
        // The method paths that get their own metric labels: the served ones only.
        let mut observed: Vec<&[u8]> = served.clone();
        observed.extend([
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ]);
        let observe = crate::observe::ObserveLayer::new(crate::observe::served_methods(&observed));
        for set in served
            .into_iter()
            .chain([tonic_health::pb::FILE_DESCRIPTOR_SET])
        {
            v1 = v1.register_encoded_file_descriptor_set(set);
            v1alpha = v1alpha.register_encoded_file_descriptor_set(set);
        }
        let reflection_names = [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ];
        let services = self.health.services();
        for name in services.iter().map(String::as_str).chain(reflection_names) {
            v1 = v1.with_service_name(name);
            v1alpha = v1alpha.with_service_name(name);
        }
        routes.add_service(v1.build_v1()?);
        routes.add_service(v1alpha.build_v1alpha()?);
        routes.add_service(self.health_service);

        // Until the connector says otherwise it cannot serve: the router then keeps
        // its tools hidden instead of offering calls that would fail.
        self.health.initialize().await;

        crate::metrics::set_up(true);
        let addr = listener.local_addr().ok();
        tracing::info!(
            connector = %self.name,
            addr = ?addr,
            services = ?services,
            "connector listening"
        );
        // On shutdown: first report NOT_SERVING, so health watchers (the router)
        // stop sending calls at once, then stop accepting and drain in-flight
        // calls. Open streams (a router's health Watch never ends by itself) would
        // hold the drain forever, so it is bounded by the grace period.
        let health = self.health.clone();
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            health.set(tonic_health::ServingStatus::NotServing).await;
            crate::metrics::set_up(false);
            let _ = stopping_tx.send(());
        };
        let server = tonic::transport::Server::builder()
            // Outermost: the call's span and duration, so a panic's INTERNAL counts.
            .layer(observe)
            // A handler that panics answers INTERNAL instead of resetting the stream.
            .layer(crate::catch_panic::CatchPanicLayer::new(&self.name))
            .add_routes(routes.routes())
            // Small replies go out at once: with Nagle's algorithm on, the end of a
            // response can wait for the client's delayed ACK (~40 ms on Linux).
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                signal,
            );
        let grace = self.shutdown_grace;
        let drain_deadline = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            served = server => served?,
            () = drain_deadline => {
                tracing::warn!(connector = %self.name, grace = ?grace, "open calls or streams did not finish within the shutdown grace period, stopping anyway");
            }
        }
        tracing::info!(connector = %self.name, "connector stopped");
        Ok(())
    }
}

/// The descriptor sets to serve: `sets`, with the writing methods of the
/// `read_only` services hidden from the tool catalog.
fn served_descriptors(
    connector: &str,
    sets: &[&'static [u8]],
    read_only: &[String],
) -> Result<Vec<&'static [u8]>, ServeError> {
    use crate::descriptors::{DescriptorError, decode, hide_methods_static, writing_methods};
    if read_only.is_empty() {
        return Ok(sets.to_vec());
    }
    let pools = sets
        .iter()
        .map(|set| decode(set))
        .collect::<Result<Vec<_>, _>>()?;
    let mut hidden = Vec::new();
    for service in read_only {
        let mut found = false;
        for methods in pools
            .iter()
            .filter_map(|pool| writing_methods(pool, service))
        {
            found = true;
            hidden.extend(methods);
        }
        if !found {
            return Err(DescriptorError::UnknownService(service.clone()).into());
        }
    }
    tracing::info!(connector, tools = ?hidden, "writes are off: writing tools hidden from the catalog");
    sets.iter()
        .map(|set| Ok(hide_methods_static(set, &hidden)?.unwrap_or(set)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: &[u8] = switchboard_proto::FILE_DESCRIPTOR_SET;

    /// Log lines written while a connector serves a call carry the caller's trace id.
    #[tokio::test(flavor = "current_thread")]
    async fn a_call_is_logged_under_the_callers_trace_id() {
        use std::sync::{Arc, Mutex};
        use tracing_subscriber::fmt::format::FmtSpan;

        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                if let Ok(mut buffer) = self.0.lock() {
                    buffer.extend_from_slice(bytes);
                }
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_span_events(FmtSpan::CLOSE)
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            ConnectorServer::new("t", SET)
                .with_shutdown_grace(std::time::Duration::from_millis(100))
                .serve(listener, async {
                    let _ = stopped.await;
                }),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
        let mut request = tonic::Request::new(tonic_health::pb::HealthCheckRequest::default());
        request.metadata_mut().insert(
            "traceparent",
            tonic::metadata::MetadataValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        client.check(request).await.expect("health check");
        let _ = stop.send(());
        let _ = server.await;

        let logged = String::from_utf8_lossy(&buffer.0.lock().expect("log")).into_owned();
        assert!(
            logged
                .lines()
                .any(|line| line.contains("method=/grpc.health.v1.Health/Check")
                    && line.contains("trace_id=4bf92f3577b34da6a3ce929d0e0e4736")),
            "{logged}"
        );
    }

    #[test]
    fn without_read_only_services_the_sets_are_served_as_they_are() {
        let served = served_descriptors("t", &[SET], &[]).expect("served");
        assert!(served.len() == 1 && std::ptr::eq(served[0], SET));
    }

    #[test]
    fn a_read_only_service_has_exactly_its_writing_methods_hidden() {
        let served = served_descriptors("t", &[SET], &["switchboard.slack.v1.Slack".to_owned()])
            .expect("served");
        assert_eq!(served.len(), 1);
        let pool = crate::descriptors::decode(served[0]).expect("served set decodes");
        let tool = pool
            .get_extension_by_name("switchboard.mcp.v1.tool")
            .expect("tool option");
        let mut hidden: Vec<String> = pool
            .services()
            .flat_map(|service| service.methods().collect::<Vec<_>>())
            .filter(|method| {
                method
                    .options()
                    .get_extension(&tool)
                    .as_message()
                    .and_then(|options| options.get_field_by_name("hidden"))
                    .is_some_and(|hidden| hidden.as_bool() == Some(true))
            })
            .map(|method| method.name().to_owned())
            .collect();
        hidden.sort();
        assert_eq!(
            hidden,
            [
                "AddReaction",
                "CreateChannel",
                "DeleteMessage",
                "SendMessage",
                "UpdateMessage"
            ]
        );
    }

    #[test]
    fn a_misspelt_read_only_service_is_an_error() {
        let error = served_descriptors("t", &[SET], &["switchboard.slack.v1.Slak".to_owned()])
            .expect_err("no such service");
        assert!(
            error.to_string().contains("switchboard.slack.v1.Slak"),
            "{error}"
        );
    }
}
