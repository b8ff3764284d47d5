//! A handler that panics answers INTERNAL; the connector keeps serving.
//!
//! Without this layer a panic in a gRPC handler unwinds the task that serves the
//! HTTP/2 connection: the call's stream is reset, the caller (the router) sees it
//! as "cancelled", which points at the wrong party, and every other call on that
//! connection fails with it. [`CatchPanicLayer`] wraps every service of a
//! [`crate::ConnectorServer`]:
//!
//! - a panic while the handler runs (a unary call, or a streaming call before it
//!   returns its stream) becomes the answer `INTERNAL` with a message naming the
//!   method;
//! - a panic while a server stream is polled for its next message ends that
//!   stream with `INTERNAL` in its trailers (messages already sent stay sent; one
//!   produced in the same poll as the panic, not yet flushed, is lost with it).
//!
//! Each is logged at error level with the method and the panic message; the panic
//! message is never sent to the caller (it may hold internals).
//!
//! A panic inside a task the handler spawned is not seen by the layer: a stream
//! fed by that task through a channel would simply end, as if complete. Handlers
//! that produce a stream from a task use [`spawn_stream`], which ends the stream
//! with the same INTERNAL when the task panics.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::FutureExt as _;
use http_body::Frame;
use tonic::codegen::http;
use tonic::codegen::{Body as HttpBody, Bytes};

/// The message of the status a panicking call is answered with.
pub fn panic_message(method: &str) -> String {
    format!(
        "the connector hit a bug while handling {method}; it has been logged (look for \"handler panicked\" in the connector's log) and the connector keeps serving other calls"
    )
}

/// A server stream produced by a task: `produce` gets the sending half of a
/// channel of `capacity` messages and runs as its own task. If it panics, the
/// stream ends with INTERNAL naming `method` (after what was already sent), and
/// the panic is logged like a handler's.
pub fn spawn_stream<T, F, Fut>(
    connector: &str,
    method: &str,
    capacity: usize,
    produce: F,
) -> tokio_stream::wrappers::ReceiverStream<Result<T, tonic::Status>>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<Result<T, tonic::Status>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(capacity.max(1));
    let on_panic = sender.clone();
    let task = tokio::spawn(produce(sender));
    let (connector, method) = (connector.to_owned(), method.to_owned());
    tokio::spawn(async move {
        if let Err(error) = task.await
            && error.is_panic()
        {
            let payload = error.into_panic();
            log_panic(&connector, &method, payload.as_ref(), "stream task");
            let _ = on_panic.send(Err(internal(&method))).await;
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// Wraps services so that a panic while handling a call answers INTERNAL.
#[derive(Debug, Clone)]
pub struct CatchPanicLayer {
    connector: Arc<str>,
}

impl CatchPanicLayer {
    /// A layer for connector `connector` (named in the logs).
    pub fn new(connector: &str) -> Self {
        Self {
            connector: Arc::from(connector),
        }
    }
}

impl<S> tower::Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic {
            inner,
            connector: Arc::clone(&self.connector),
        }
    }
}

/// The service made by [`CatchPanicLayer`].
#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
    connector: Arc<str>,
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
fn payload_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic payload that is not text)")
}

fn log_panic(connector: &str, method: &str, payload: &(dyn Any + Send), while_doing: &str) {
    tracing::error!(
        connector,
        method,
        panic = payload_text(payload),
        during = while_doing,
        "handler panicked; answered INTERNAL"
    );
}

fn internal(method: &str) -> tonic::Status {
    tonic::Status::internal(panic_message(method))
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for CatchPanic<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let method: Arc<str> = Arc::from(request.uri().path());
        let connector = Arc::clone(&self.connector);
        let future = match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(future) => future,
            Err(payload) => {
                log_panic(&connector, &method, payload.as_ref(), "call");
                return Box::pin(std::future::ready(Ok(internal(&method).into_http())));
            }
        };
        Box::pin(async move {
            match AssertUnwindSafe(future).catch_unwind().await {
                Ok(Ok(response)) => Ok(response.map(|body| {
                    tonic::body::Body::new(GuardedBody {
                        inner: Some(Box::pin(body)),
                        connector,
                        method,
                    })
                })),
                Ok(Err(error)) => Err(error),
                Err(payload) => {
                    log_panic(&connector, &method, payload.as_ref(), "handler");
                    Ok(internal(&method).into_http())
                }
            }
        })
    }
}

/// A response body whose panics end it with INTERNAL trailers.
struct GuardedBody<B> {
    /// `None` once it ended because of a panic.
    inner: Option<Pin<Box<B>>>,
    connector: Arc<str>,
    method: Arc<str>,
}

impl<B> HttpBody for GuardedBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Data = Bytes;
    type Error = tonic::codegen::StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll_frame(cx))) {
            Ok(Poll::Ready(Some(Err(error)))) => Poll::Ready(Some(Err(error.into()))),
            Ok(other) => other.map(|frame| frame.map(|f| f.map_err(Into::into))),
            Err(payload) => {
                self.inner = None;
                log_panic(&self.connector, &self.method, payload.as_ref(), "stream");
                let mut trailers = http::HeaderMap::new();
                match internal(&self.method).add_header(&mut trailers) {
                    Ok(()) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
                    Err(status) => Poll::Ready(Some(Err(status.into()))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(|inner| inner.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.inner {
            Some(inner) => inner.size_hint(),
            None => http_body::SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures::StreamExt as _;
    use switchboard_proto::mcp::v1 as pb;
    use switchboard_proto::mcp::v1::resources_client::ResourcesClient;
    use switchboard_proto::mcp::v1::resources_server::{Resources, ResourcesServer};
    use tonic::{Code, Request, Response, Status};

    use super::panic_message;
    use crate::ConnectorServer;

    /// A service with a bug in some handlers: `ReadResource` panics, and
    /// `WatchResource` sends one update, then panics while producing the next.
    struct Buggy;

    type Updates = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<pb::ResourceUpdated, Status>> + Send>,
    >;

    #[tonic::async_trait]
    impl Resources for Buggy {
        async fn list_resources(
            &self,
            _: Request<pb::ListResourcesRequest>,
        ) -> Result<Response<pb::ListResourcesResponse>, Status> {
            Ok(Response::new(pb::ListResourcesResponse::default()))
        }

        async fn list_resource_templates(
            &self,
            _: Request<pb::ListResourceTemplatesRequest>,
        ) -> Result<Response<pb::ListResourceTemplatesResponse>, Status> {
            Err(Status::unimplemented("no templates"))
        }

        async fn read_resource(
            &self,
            request: Request<pb::ReadResourceRequest>,
        ) -> Result<Response<pb::ReadResourceResponse>, Status> {
            let uri = request.into_inner().uri;
            let index: usize = uri.len() + 10;
            // The bug: an index from the input, unchecked.
            let byte = uri.as_bytes()[index];
            Ok(Response::new(pb::ReadResourceResponse {
                contents: vec![pb::ResourceContents {
                    uri: byte.to_string(),
                    ..Default::default()
                }],
                ..Default::default()
            }))
        }

        type WatchResourceStream = Updates;

        async fn watch_resource(
            &self,
            request: Request<pb::WatchResourceRequest>,
        ) -> Result<Response<Updates>, Status> {
            if request.get_ref().uri == "test://task" {
                // The updates come from a task, which panics after the first.
                let updates = super::spawn_stream(
                    "buggy",
                    "/switchboard.mcp.v1.Resources/WatchResource",
                    4,
                    |sender| async move {
                        let first = pb::ResourceUpdated {
                            uri: "test://0".into(),
                        };
                        if sender.send(Ok(first)).await.is_ok() {
                            panic!("the task producing updates has a bug");
                        }
                    },
                );
                return Ok(Response::new(Box::pin(updates)));
            }
            // Updates come one at a time, as a real watch's do.
            let updates = futures::stream::iter(0..3).then(|n| async move {
                tokio::task::yield_now().await;
                if n == 1 {
                    panic!("the second update has a bug");
                }
                Ok(pb::ResourceUpdated {
                    uri: format!("test://{n}"),
                })
            });
            Ok(Response::new(Box::pin(updates)))
        }

        async fn complete(
            &self,
            _: Request<pb::CompleteRequest>,
        ) -> Result<Response<pb::CompleteResponse>, Status> {
            Err(Status::unimplemented("no completion"))
        }
    }

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Log {
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

    impl Log {
        fn text(&self) -> String {
            self.0
                .lock()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        }
    }

    /// The buggy service in a real connector server on loopback, its log captured.
    async fn serve_buggy() -> (
        ResourcesClient<tonic::transport::Channel>,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<Result<(), crate::server::ServeError>>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            ConnectorServer::new("buggy", switchboard_proto::FILE_DESCRIPTOR_SET)
                .with_shutdown_grace(std::time::Duration::from_millis(100))
                .add_service(ResourcesServer::new(Buggy))
                .serve(listener, async {
                    let _ = stopped.await;
                }),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        (ResourcesClient::new(channel), stop, server)
    }

    fn capture(log: &Log) -> tracing::subscriber::DefaultGuard {
        let writer = log.clone();
        tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish(),
        )
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panicking_handler_answers_internal_and_the_server_keeps_serving() {
        let log = Log::default();
        let _guard = capture(&log);
        let (mut client, stop, server) = serve_buggy().await;

        for _ in 0..2 {
            let status = client
                .read_resource(pb::ReadResourceRequest {
                    uri: "test://x".into(),
                })
                .await
                .expect_err("the handler panics");
            assert_eq!(status.code(), Code::Internal, "{status:?}");
            assert_eq!(
                status.message(),
                panic_message("/switchboard.mcp.v1.Resources/ReadResource")
            );
            assert!(
                !status.message().contains("index out of bounds"),
                "{status:?}"
            );
            // The same connection still serves the next call.
            client
                .list_resources(pb::ListResourcesRequest::default())
                .await
                .expect("the next call is served");
        }
        let _ = stop.send(());
        assert!(server.await.is_ok_and(|served| served.is_ok()));

        let logged = log.text();
        let line = logged
            .lines()
            .find(|line| line.contains("handler panicked"))
            .unwrap_or_else(|| panic!("no panic logged:\n{logged}"));
        assert!(line.contains("ERROR"), "{line}");
        assert!(
            line.contains("method=\"/switchboard.mcp.v1.Resources/ReadResource\"")
                || line.contains("method=/switchboard.mcp.v1.Resources/ReadResource"),
            "{line}"
        );
        assert!(line.contains("index out of bounds"), "{line}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stream_that_panics_ends_with_internal_after_what_it_sent() {
        let log = Log::default();
        let _guard = capture(&log);
        let (mut client, stop, server) = serve_buggy().await;

        let mut updates = client
            .watch_resource(pb::WatchResourceRequest {
                uri: "test://x".into(),
            })
            .await
            .expect("the stream opens")
            .into_inner();
        let first = updates.message().await.expect("first update");
        assert_eq!(first.map(|u| u.uri).as_deref(), Some("test://0"));
        let status = updates.message().await.expect_err("the stream panics");
        assert_eq!(status.code(), Code::Internal, "{status:?}");
        assert_eq!(
            status.message(),
            panic_message("/switchboard.mcp.v1.Resources/WatchResource")
        );
        client
            .list_resources(pb::ListResourcesRequest::default())
            .await
            .expect("the next call is served");
        let _ = stop.send(());
        let _ = server.await;

        let logged = log.text();
        assert!(
            logged.lines().any(|line| line.contains("handler panicked")
                && line.contains("the second update has a bug")
                && line.contains("WatchResource")),
            "{logged}"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stream_whose_task_panics_ends_with_internal_not_as_complete() {
        let log = Log::default();
        let _guard = capture(&log);
        let (mut client, stop, server) = serve_buggy().await;

        let mut updates = client
            .watch_resource(pb::WatchResourceRequest {
                uri: "test://task".into(),
            })
            .await
            .expect("the stream opens")
            .into_inner();
        let first = updates.message().await.expect("first update");
        assert_eq!(first.map(|u| u.uri).as_deref(), Some("test://0"));
        let status = updates
            .message()
            .await
            .expect_err("the stream ends with an error, not as complete");
        assert_eq!(status.code(), Code::Internal, "{status:?}");
        assert_eq!(
            status.message(),
            panic_message("/switchboard.mcp.v1.Resources/WatchResource")
        );
        let _ = stop.send(());
        let _ = server.await;
        let logged = log.text();
        assert!(
            logged.lines().any(|line| line.contains("handler panicked")
                && line.contains("the task producing updates has a bug")),
            "{logged}"
        );
    }
}
