//! Server-only code (feature `ssr`), by what each part owns. The edges (`http`, `ws`) take
//! requests and frames and call the services; the services hold the rules and are given
//! the handles they use; `store` and `hub` are the two seams a second node would replace.
//!
//! | module | owns |
//! |---|---|
//! | `app` | building everything, the router, serving, shutdown |
//! | `state` | `AppState`: what the edges share (nothing below them sees it) |
//! | `config` | flags and environment, in groups |
//! | `http` | axum handlers, the server functions' glue, security layers, error responses |
//! | `ws` | the WebSocket upgrade, the connection loop, its mailbox, one file per client frame |
//! | `auth` | accounts, passwords, sessions |
//! | `account` | deleting an account and erasing what it wrote; the export of a user's data |
//! | `retention` | expiring old messages |
//! | `audit` | the tamper-evident log of security events |
//! | `metrics` | the Prometheus metrics (`/metrics`) |
//! | `analytics` | analytics events in their own database, off the hot path |
//! | `reports` | operators' read-only SQL over the analytics database |
//! | `chat` | conversations and the one way a message is posted |
//! | `contacts` | the contact list, blocks, contact groups |
//! | `profile` | status, name, personal message, display pictures |
//! | `presence` | who is online, and telling the contacts who may see it |
//! | `bots` | the AI contacts |
//! | `hub` | the fan-out seam (`Fanout`) and the in-process hub |
//! | `store` | the storage seam (a trait per aggregate, `MessageLog`) and SQLite |
//! | `limits` | what one user or address may consume: sockets, frames, guesses, accounts |
//! | `text` | Unicode hygiene of what users write |
//! | `prefetch` | a cache hint for the publisher's loop (the one instruction of unsafe code outside `store`) |
//! | `admin` | administration commands |

pub mod account;
pub mod admin;
pub mod analytics;
pub mod app;
pub mod audit;
pub mod auth;
pub mod bots;
pub mod chat;
pub mod config;
pub mod contacts;
pub mod error;
pub mod http;
pub mod hub;
pub mod limits;
pub mod media;
pub mod metrics;
pub mod prefetch;
pub mod presence;
pub mod profile;
pub mod reports;
pub mod retention;
pub mod state;
pub mod store;
pub mod text;
pub mod ws;
