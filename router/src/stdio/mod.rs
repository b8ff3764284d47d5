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
//!   which is not affected. When the session ends, shutting the output down
//!   shuts the socket's writing side: the client reads the end of the
//!   stream then, not only when the process exits.
//!
//! Anything else (a terminal, a file redirected in) is read and written
//! through Tokio's blocking handles, as before.

mod bounded;

pub use bounded::BoundedTransport;
pub(crate) use bounded::{Scanner, too_large};

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt as _;

use rmcp::transport::io::{StdioReader, StdioWriter, stdio_pipes};
use tokio::net::UnixStream;
use tokio_util::either::Either;

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

/// Standard input, as MCP reads it: a non-blocking socket, or rmcp's reader
/// (a pipe reopened non-blocking, or anything else on the blocking pool).
pub type Input = Either<UnixStream, StdioReader>;

/// Standard output, as MCP writes it (the same choices as [`Input`]).
pub type Output = Either<UnixStream, StdioWriter>;

/// The standard streams for an MCP session, and how they are driven. Must be
/// called within the Tokio runtime.
pub fn streams() -> (Input, Output, Driven) {
    let (stdin, stdout) = (io::stdin(), io::stdout());
    let (input, output) = (file_type(stdin.as_fd()), file_type(stdout.as_fd()));
    let kinds = (
        input.as_ref().map(|(_, kind)| *kind),
        output.as_ref().map(|(_, kind)| *kind),
    );
    if let (Some((input, _)), Some((output, _))) = (input, output)
        && kinds.0.is_some_and(|kind| kind.is_socket())
        && kinds.1.is_some_and(|kind| kind.is_socket())
        && let Some((input, output)) = sockets(input, output)
    {
        return (Either::Left(input), Either::Left(output), Driven::Sockets);
    }
    let driven = if kinds.0.is_some_and(|kind| kind.is_fifo())
        && kinds.1.is_some_and(|kind| kind.is_fifo())
    {
        Driven::Pipes
    } else {
        Driven::Blocking
    };
    let (input, output) = stdio_pipes();
    (Either::Right(input), Either::Right(output), driven)
}

/// A duplicate of `fd` and the type of the file it refers to.
fn file_type(fd: BorrowedFd<'_>) -> Option<(std::fs::File, std::fs::FileType)> {
    let file = std::fs::File::from(fd.try_clone_to_owned().ok()?);
    let file_type = file.metadata().ok()?.file_type();
    Some((file, file_type))
}

/// Duplicates of the standard sockets, both non-blocking, or neither: a
/// socket left non-blocking would fail the blocking handles read or written
/// in their place.
fn sockets(input: std::fs::File, output: std::fs::File) -> Option<(UnixStream, UnixStream)> {
    let input = std::os::unix::net::UnixStream::from(OwnedFd::from(input));
    let output = std::os::unix::net::UnixStream::from(OwnedFd::from(output));
    let driven = (|| {
        input.set_nonblocking(true)?;
        output.set_nonblocking(true)?;
        Ok::<_, io::Error>((
            UnixStream::from_std(input.try_clone()?)?,
            UnixStream::from_std(output.try_clone()?)?,
        ))
    })();
    if driven.is_err() {
        let _ = input.set_nonblocking(false);
        let _ = output.set_nonblocking(false);
    }
    driven.ok()
}
