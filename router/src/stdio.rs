//! The standard streams MCP over stdio is spoken on, read and written on the
//! runtime's I/O reactor whenever the client gave us something it can poll.
//!
//! Tokio's `stdin()`/`stdout()` hand every read and every write to a thread
//! of the blocking pool and wake the runtime when it is done: two thread
//! hand-offs per message each way, on the path of every call. MCP clients
//! start a stdio server with pipes (Python's `subprocess`, Tokio's `process`)
//! or with socket pairs (Node's `child_process`, which is what Claude Code
//! and the Inspector use), and both can be polled:
//!
//! - pipes: rmcp's [`stdio_pipes`] reopens them through `/proc/self/fd`, so
//!   the non-blocking flag stays on descriptions of the router's own;
//! - sockets: a duplicate of each descriptor is made non-blocking and driven
//!   as a stream socket. A socket cannot be reopened, so the flag is set on
//!   the description the router was given; the router starts no process
//!   that could share it, and the client holds the other end of the pair,
//!   which is not affected.
//!
//! Anything else (a terminal, a file redirected in) is read and written
//! through Tokio's blocking handles, as before.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use rmcp::transport::io::{StdioReader, StdioWriter, stdio_pipes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;

/// How the standard streams are driven (logged at start-up, at debug level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driven {
    /// Both are sockets, polled on the reactor.
    Sockets,
    /// Both are pipes, handed to rmcp's [`stdio_pipes`] (which reopens them
    /// non-blocking, or keeps the blocking handles where `/proc` is missing).
    Pipes,
    /// Anything else: Tokio's blocking handles.
    Blocking,
}

/// Standard input, as MCP reads it.
#[derive(Debug)]
pub enum Input {
    /// A socket, non-blocking.
    Socket(UnixStream),
    /// A pipe (non-blocking) or anything else (blocking pool).
    Other(StdioReader),
}

/// Standard output, as MCP writes it.
#[derive(Debug)]
pub enum Output {
    /// A socket, non-blocking.
    Socket(UnixStream),
    /// A pipe (non-blocking) or anything else (blocking pool).
    Other(StdioWriter),
}

/// The standard streams for an MCP session, and how they are driven. Must be
/// called within the Tokio runtime.
pub fn streams() -> (Input, Output, Driven) {
    let (stdin, stdout) = (io::stdin(), io::stdout());
    if let (Some(input), Some(output)) = (socket(stdin.as_fd()), socket(stdout.as_fd())) {
        return (
            Input::Socket(input),
            Output::Socket(output),
            Driven::Sockets,
        );
    }
    let driven = if is_fifo(stdin.as_fd()) && is_fifo(stdout.as_fd()) {
        Driven::Pipes
    } else {
        Driven::Blocking
    };
    let (input, output) = stdio_pipes();
    (Input::Other(input), Output::Other(output), driven)
}

/// The type of the file `fd` refers to.
fn file_type(fd: BorrowedFd<'_>) -> Option<(std::fs::File, std::fs::FileType)> {
    let file = std::fs::File::from(fd.try_clone_to_owned().ok()?);
    let file_type = file.metadata().ok()?.file_type();
    Some((file, file_type))
}

fn is_fifo(fd: BorrowedFd<'_>) -> bool {
    file_type(fd).is_some_and(|(_, kind)| kind.is_fifo())
}

/// A duplicate of `fd` as a non-blocking stream socket, when it is a socket.
fn socket(fd: BorrowedFd<'_>) -> Option<UnixStream> {
    let (file, kind) = file_type(fd)?;
    if !kind.is_socket() {
        return None;
    }
    let stream = std::os::unix::net::UnixStream::from(OwnedFd::from(file));
    stream.set_nonblocking(true).ok()?;
    UnixStream::from_std(stream).ok()
}

impl AsyncRead for Input {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Socket(socket) => Pin::new(socket).poll_read(cx, buf),
            Self::Other(reader) => Pin::new(reader).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Output {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Socket(socket) => Pin::new(socket).poll_write(cx, buf),
            Self::Other(writer) => Pin::new(writer).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Socket(socket) => Pin::new(socket).poll_flush(cx),
            Self::Other(writer) => Pin::new(writer).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            // Only this duplicate is closed; the client sees the end of the
            // stream when the process exits, as with the other kinds.
            Self::Socket(_) => Poll::Ready(Ok(())),
            Self::Other(writer) => Pin::new(writer).poll_shutdown(cx),
        }
    }
}
