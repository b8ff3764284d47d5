//! Integration tests of the database connector: the service in-process on an
//! ephemeral port, called with the generated gRPC client, against the real
//! PostgreSQL, MariaDB and Redis on this machine and SQLite files.

mod caching;
mod demo;
mod health;
mod safety;
mod support;
mod tools;
