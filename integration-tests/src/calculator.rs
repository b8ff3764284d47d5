//! The test connector's service: every shape the router must carry.
//!
//! It always implements the second version of the proto; which version it
//! advertises over reflection is chosen at start, which is exactly what a
//! redeployed connector with a changed proto looks like to the router.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status};

use crate::pb::calculator_server::{Calculator, CalculatorServer};
use crate::pb::*;

/// Which proto version to advertise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoVersion {
    /// Without `Power`.
    V1,
    /// With `Power`.
    V2,
}

/// The calculator service.
#[derive(Debug, Default, Clone)]
pub struct CalculatorService {
    /// The address it listens on, reported by `Echo` so tests can tell replicas apart.
    pub served_by: String,
    /// Sleep calls in flight, reported by `Echo` (tests see cancellations arrive).
    pub sleeping: std::sync::Arc<std::sync::atomic::AtomicU32>,
    /// What `Echo` reports besides: calls received by method and the most
    /// Sleep calls at once (tests of the router's limits count with them).
    pub counters: std::sync::Arc<Counters>,
    /// How long Add and Divide (read-only) take to answer
    /// (`TEST_READ_DELAY_MS`), so that identical calls overlap.
    pub read_delay: Duration,
}

/// Calls received, by method, and the most Sleep calls at once.
#[derive(Debug, Default)]
pub struct Counters {
    calls: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    most_sleeping: std::sync::atomic::AtomicU32,
}

impl Counters {
    fn count(&self, method: &str) {
        let mut calls = self
            .calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *calls.entry(method.to_owned()).or_default() += 1;
    }

    fn calls(&self) -> std::collections::HashMap<String, u64> {
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

/// Counts one running Sleep until dropped (also when its call is cancelled).
struct Sleeping(std::sync::Arc<std::sync::atomic::AtomicU32>);

impl Sleeping {
    fn start(counter: &std::sync::Arc<std::sync::atomic::AtomicU32>, counters: &Counters) -> Self {
        let now = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        counters
            .most_sleeping
            .fetch_max(now, std::sync::atomic::Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for Sleeping {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

type CountStream = Pin<Box<dyn Stream<Item = Result<CountReply, Status>> + Send>>;

#[tonic::async_trait]
impl Calculator for CalculatorService {
    async fn add(&self, request: Request<AddRequest>) -> Result<Response<AddResponse>, Status> {
        self.counters.count("Add");
        if !self.read_delay.is_zero() {
            tokio::time::sleep(self.read_delay).await;
        }
        let r = request.into_inner();
        Ok(Response::new(AddResponse { sum: r.a + r.b }))
    }

    async fn divide(
        &self,
        request: Request<DivideRequest>,
    ) -> Result<Response<DivideResponse>, Status> {
        self.counters.count("Divide");
        if !self.read_delay.is_zero() {
            tokio::time::sleep(self.read_delay).await;
        }
        let r = request.into_inner();
        if r.divisor == 0 {
            return Err(Status::invalid_argument("divisor must not be zero"));
        }
        Ok(Response::new(DivideResponse {
            quotient: r.dividend.wrapping_div(r.divisor),
            remainder: r.dividend.wrapping_rem(r.divisor),
        }))
    }

    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        let r = request.into_inner();
        let repeat = r.repeat.unwrap_or(1);
        if !(1..=100).contains(&repeat) {
            return Err(Status::invalid_argument("repeat must be between 1 and 100"));
        }
        let mut message = vec![r.message.as_str(); repeat as usize].join(" ");
        if r.volume() == Volume::Loud {
            message = message.to_uppercase();
        }
        let recipient = match r.recipient {
            Some(echo_request::Recipient::User(u)) => format!("user {u}"),
            Some(echo_request::Recipient::UserId(id)) => format!("user #{id}"),
            None => String::new(),
        };
        Ok(Response::new(EchoResponse {
            message,
            tags: r.tags,
            meta: r.meta,
            recipient,
            served_by: self.served_by.clone(),
            sleeping_now: self.sleeping.load(std::sync::atomic::Ordering::SeqCst),
            most_sleeping: self
                .counters
                .most_sleeping
                .load(std::sync::atomic::Ordering::SeqCst),
            calls: self.counters.calls(),
        }))
    }

    type CountStream = CountStream;

    async fn count(
        &self,
        request: Request<CountRequest>,
    ) -> Result<Response<Self::CountStream>, Status> {
        let r = request.into_inner();
        if !(1..=1000).contains(&r.to) {
            return Err(Status::invalid_argument("to must be between 1 and 1000"));
        }
        let delay = Duration::from_millis(u64::from(r.delay_ms.unwrap_or(0)));
        let stream = async_stream(r.to, delay);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn sleep(
        &self,
        request: Request<SleepRequest>,
    ) -> Result<Response<SleepResponse>, Status> {
        self.counters.count("Sleep");
        let started = Instant::now();
        let _sleeping = Sleeping::start(&self.sleeping, &self.counters);
        tokio::time::sleep(Duration::from_millis(u64::from(request.into_inner().ms))).await;
        Ok(Response::new(SleepResponse {
            slept_ms: started.elapsed().as_millis() as u64,
        }))
    }

    async fn fail(&self, request: Request<FailRequest>) -> Result<Response<FailResponse>, Status> {
        let r = request.into_inner();
        if r.code == "UPSTREAM_RATE_LIMITED" {
            // What the Jira and Slack connectors answer once their API keeps
            // saying 429: marked for the router, with the wait it asked for.
            return Err(connector_kit::retry::upstream_rate_limited(
                r.message,
                Some(Duration::from_secs(7)),
            ));
        }
        let code = match r.code.as_str() {
            "INVALID_ARGUMENT" => Code::InvalidArgument,
            "NOT_FOUND" => Code::NotFound,
            "PERMISSION_DENIED" => Code::PermissionDenied,
            "UNAUTHENTICATED" => Code::Unauthenticated,
            "FAILED_PRECONDITION" => Code::FailedPrecondition,
            "RESOURCE_EXHAUSTED" => Code::ResourceExhausted,
            "UNAVAILABLE" => Code::Unavailable,
            "DEADLINE_EXCEEDED" => Code::DeadlineExceeded,
            _ => Code::Internal,
        };
        Err(Status::new(code, r.message))
    }

    async fn power(
        &self,
        request: Request<PowerRequest>,
    ) -> Result<Response<PowerResponse>, Status> {
        let r = request.into_inner();
        Ok(Response::new(PowerResponse {
            value: r.base.powf(r.exponent),
        }))
    }
}

fn async_stream(to: i32, delay: Duration) -> impl Stream<Item = Result<CountReply, Status>> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        for n in 1..=to {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if tx.send(Ok(CountReply { n })).await.is_err() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Serves the calculator on `listener` until `shutdown` completes. With
/// `serving == false` it reports NOT_SERVING (as an unconfigured connector does).
pub async fn serve(
    listener: TcpListener,
    version: ProtoVersion,
    serving: bool,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    serve_with(listener, version, serving, Duration::ZERO, shutdown).await
}

/// [`serve`], with Add and Divide taking `read_delay` to answer.
pub async fn serve_with(
    listener: TcpListener,
    version: ProtoVersion,
    serving: bool,
    read_delay: Duration,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let descriptors = match version {
        ProtoVersion::V1 => crate::CALCULATOR_V1,
        ProtoVersion::V2 => crate::CALCULATOR_V2,
    };
    let server = connector_kit::ConnectorServer::new("calculator", descriptors).add_service(
        CalculatorServer::new(CalculatorService {
            served_by: listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            sleeping: Default::default(),
            counters: Default::default(),
            read_delay,
        }),
    );
    let health = server.health();
    if serving {
        health.set_serving().await;
    }
    server.serve(listener, shutdown).await?;
    Ok(())
}
