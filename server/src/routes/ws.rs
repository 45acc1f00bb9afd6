//! `GET /ws[?last_seq=N]`: the live status connection.
//!
//! On connect: `hello`, then what the client missed since `last_seq` (when the hub still has
//! it) or a snapshot of all the owner's jobs. After that, every change of the owner's jobs.
//! The session loop selects over hub messages, client frames, a lag signal and a heartbeat
//! (ping every 5 s, close after 10 s of silence), and always closes with a reason.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{
    AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, ProtocolError, Session,
};
use datavista_shared::protocol::{
    ClientMessage, ProtocolErrorCode, ServerMessage, MAX_MESSAGE_BYTES, PROTOCOL_VERSION,
};
use serde::Deserialize;

use crate::errors::ApiError;
use crate::hub::{Refused, Subscription};
use crate::jobs::Cancel;
use crate::owner::OwnerId;
use crate::routes::auth::Owner;
use crate::state::AppState;

const PING_EVERY: Duration = Duration::from_secs(5);
const SILENCE_LIMIT: Duration = Duration::from_secs(10);
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Status messages are small. Left alone, the kernel grows a loopback or LAN send buffer to
/// megabytes, so a tab that stops reading would hide behind thousands of buffered updates
/// (and pin that memory per idle connection). With a small buffer it shows up as lagging
/// within a few dozen messages and gets one snapshot when it reads again.
const SOCKET_SEND_BUFFER_BYTES: usize = 32 * 1024;

/// The raw socket of an HTTP connection, recorded when it is accepted so an upgrade to a
/// WebSocket can tune it.
#[derive(Clone, Copy)]
pub struct ConnectionSocket(#[cfg(unix)] std::os::fd::RawFd);

/// `HttpServer::on_connect` hook.
pub fn remember_socket(connection: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
    #[cfg(unix)]
    if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        use std::os::fd::AsRawFd;
        data.insert(ConnectionSocket(tcp.as_raw_fd()));
    }
}

fn shrink_send_buffer(req: &HttpRequest) {
    #[cfg(unix)]
    if let Some(ConnectionSocket(fd)) = req.conn_data::<ConnectionSocket>() {
        // SAFETY: the descriptor belongs to the connection this request arrived on, and the
        // HTTP dispatcher keeps that connection open at least until this handler returns.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(*fd) };
        if let Err(e) = socket2::SockRef::from(&fd).set_send_buffer_size(SOCKET_SEND_BUFFER_BYTES) {
            tracing::debug!("cannot shrink a WebSocket send buffer: {e}");
        }
    }
}

#[derive(Deserialize)]
pub struct Connect {
    last_seq: Option<u64>,
}

pub async fn connect(
    state: web::Data<AppState>,
    owner: Owner,
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<Connect>,
) -> Result<HttpResponse, actix_web::Error> {
    // Cross-site WebSocket hijacking: the same Origin check as every cookie-made change.
    crate::routes::auth::check_origin(&req, &state.config.allowed_origins)?;
    // Watched before the check: a shutdown that starts right after it still reaches this
    // connection's loop instead of slipping between the check and the subscription.
    let shutdown = state.shutdown.subscribe();
    if *shutdown.borrow() {
        return Err(ApiError::Unavailable("the server is shutting down".into()).into());
    }
    // Registered before the upgrade, so an owner at the limit gets a plain 429.
    let subscription = match state.hub.subscribe(owner.0.clone()) {
        Ok(subscription) => subscription,
        Err(Refused::Owner) => {
            return Err(ApiError::TooManyConnections(format!(
                "at most {} live connections per user; close a dashboard tab and try again",
                state.config.max_connections_per_owner
            ))
            .into())
        }
        Err(Refused::Server) => {
            return Err(ApiError::TooManyConnections(
                "the server holds as many live connections as it can; try again later".into(),
            )
            .into())
        }
    };
    let (response, session, stream) = match actix_ws::handle(&req, body) {
        Ok(upgrade) => upgrade,
        Err(e) => {
            state.hub.unsubscribe(owner.0, subscription.id);
            return Err(e);
        }
    };
    shrink_send_buffer(&req);
    let stream = stream
        .max_frame_size(MAX_MESSAGE_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_MESSAGE_BYTES);
    actix_web::rt::spawn(run(
        state.clone(),
        owner.0,
        subscription,
        session,
        stream,
        query.last_seq,
        shutdown,
    ));
    Ok(response)
}

async fn run(
    state: web::Data<AppState>,
    owner: OwnerId,
    mut subscription: Subscription,
    mut session: Session,
    mut stream: AggregatedMessageStream,
    last_seq: Option<u64>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let reason = match greet(&state, &owner, &mut session, last_seq).await {
        Ok(seq) => {
            serve(
                &state,
                &owner,
                &mut session,
                &mut stream,
                &mut subscription,
                &mut shutdown,
                seq,
            )
            .await
        }
        Err(reason) => reason,
    };
    state.hub.unsubscribe(owner, subscription.id);
    let _ = session.close(reason).await;
}

/// Hello, then the missed messages or a snapshot; returns the sequence number sent up to.
async fn greet(
    state: &web::Data<AppState>,
    owner: &OwnerId,
    session: &mut Session,
    last_seq: Option<u64>,
) -> Result<u64, Option<CloseReason>> {
    let missed = match last_seq {
        Some(after) => state
            .hub
            .history(owner, after)
            .map(|missed| (missed.last().map_or(after, |m| m.seq()), missed)),
        None => None,
    };
    // What it missed when the hub still has all of it; otherwise a snapshot.
    let (seq, messages) = match missed {
        Some(missed) => missed,
        None => {
            let (seq, parts) = snapshot(state, owner).await?;
            (seq, parts.into_iter().map(std::sync::Arc::new).collect())
        }
    };
    send(
        session,
        &ServerMessage::Hello {
            seq,
            protocol_version: PROTOCOL_VERSION,
        },
    )
    .await?;
    for message in &messages {
        send(session, message).await?;
    }
    Ok(seq)
}

async fn snapshot(
    state: &web::Data<AppState>,
    owner: &OwnerId,
) -> Result<(u64, Vec<ServerMessage>), Option<CloseReason>> {
    let (store, owner) = (state.store.clone(), owner.clone());
    match web::block(move || store.snapshot(&owner)).await {
        Ok(Ok((seq, jobs))) => Ok((seq, ServerMessage::snapshot_parts(seq, jobs))),
        _ => Err(Some(CloseReason {
            code: CloseCode::Error,
            description: Some("the server could not read your jobs".into()),
        })),
    }
}

/// A client that stops reading altogether would block this send forever (the outgoing queue
/// is bounded); give up on it after a while, so its session ends.
async fn send(session: &mut Session, message: &ServerMessage) -> Result<(), Option<CloseReason>> {
    match tokio::time::timeout(SEND_TIMEOUT, session.text(message.to_json())).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(None),
        Err(_) => Err(Some(CloseReason {
            code: CloseCode::Away,
            description: Some("not reading".into()),
        })),
    }
}

async fn serve(
    state: &web::Data<AppState>,
    owner: &OwnerId,
    session: &mut Session,
    stream: &mut AggregatedMessageStream,
    subscription: &mut Subscription,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
    mut sent: u64,
) -> Option<CloseReason> {
    let mut heartbeat = tokio::time::interval(PING_EVERY);
    let mut last_heard = Instant::now();
    let mut asked_snapshots = SnapshotPace::default();
    loop {
        tokio::select! {
            message = subscription.messages.recv() => {
                let Some(message) = message else { return Some(CloseCode::Restart.into()) };
                if message.seq() > sent {
                    sent = message.seq();
                    if let Err(reason) = send(session, &message).await { return reason; }
                }
            }
            _ = subscription.notify.notified() => {
                if subscription.lagged.load(Ordering::Acquire) {
                    // Too slow for the stream of updates: start again from a snapshot. Clear
                    // the flag first, so updates after the snapshot are queued again.
                    while subscription.messages.try_recv().is_ok() {}
                    subscription.lagged.store(false, Ordering::Release);
                    match resync(state, owner, session).await {
                        Ok(seq) => sent = seq,
                        Err(reason) => return reason,
                    }
                }
            }
            frame = stream.recv() => {
                last_heard = Instant::now();
                match frame {
                    None => return None,
                    Some(Err(ProtocolError::Overflow)) => {
                        return Some(CloseReason { code: CloseCode::Size, description: Some(format!("frames are limited to {MAX_MESSAGE_BYTES} bytes")) });
                    }
                    Some(Err(e)) => return Some(CloseReason { code: CloseCode::Protocol, description: Some(e.to_string()) }),
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        match handle_client(state, owner, session, &text, sent, &mut asked_snapshots).await {
                            Ok(Some(seq)) => sent = seq,
                            Ok(None) => {}
                            Err(reason) => return reason,
                        }
                    }
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        let error = ServerMessage::Error { seq: sent, code: ProtocolErrorCode::Unsupported, message: "send JSON text frames".into() };
                        if let Err(reason) = send(session, &error).await { return reason; }
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => { if session.pong(&bytes).await.is_err() { return None; } }
                    Some(Ok(AggregatedMessage::Pong(_))) => {}
                    Some(Ok(AggregatedMessage::Close(_))) => return None,
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    return Some(CloseReason { code: CloseCode::Away, description: Some("no answer to pings".into()) });
                }
                if session.ping(b"").await.is_err() { return None; }
            }
            _ = shutdown.changed() => {
                return Some(CloseReason { code: CloseCode::Restart, description: Some("the server is restarting; reconnect".into()) });
            }
        }
    }
}

async fn resync(
    state: &web::Data<AppState>,
    owner: &OwnerId,
    session: &mut Session,
) -> Result<u64, Option<CloseReason>> {
    let (seq, parts) = snapshot(state, owner).await?;
    for part in &parts {
        send(session, part).await?;
    }
    Ok(seq)
}

/// Snapshots a client asks for (`resume` with no or an old sequence number) cost a read of
/// all the owner's jobs; one connection gets at most one a [`SNAPSHOT_EVERY`], and a client
/// asking faster waits (its own connection only).
#[derive(Default)]
struct SnapshotPace {
    last: Option<tokio::time::Instant>,
}

const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

impl SnapshotPace {
    async fn wait_turn(&mut self) {
        if let Some(last) = self.last {
            tokio::time::sleep_until(last + SNAPSHOT_EVERY).await;
        }
        self.last = Some(tokio::time::Instant::now());
    }
}

/// One client message; returns a new "sent up to" sequence number when it sent updates.
async fn handle_client(
    state: &web::Data<AppState>,
    owner: &OwnerId,
    session: &mut Session,
    text: &str,
    sent: u64,
    asked_snapshots: &mut SnapshotPace,
) -> Result<Option<u64>, Option<CloseReason>> {
    let message = match ClientMessage::from_json(text) {
        Ok(message) => message,
        Err(e) => {
            send(
                session,
                &ServerMessage::Error {
                    seq: sent,
                    code: e.code,
                    message: e.message,
                },
            )
            .await?;
            return Ok(None);
        }
    };
    match message {
        ClientMessage::Ping { nonce } => {
            send(session, &ServerMessage::Pong { seq: sent, nonce }).await?;
            Ok(None)
        }
        ClientMessage::Resume { last_seq } => {
            if let Some(after) = last_seq {
                if let Some(missed) = state.hub.history(owner, after) {
                    for message in &missed {
                        send(session, message).await?;
                    }
                    return Ok(Some(missed.last().map_or(sent, |m| m.seq().max(sent))));
                }
            }
            asked_snapshots.wait_turn().await;
            resync(state, owner, session).await.map(Some)
        }
        ClientMessage::Cancel { job_id } => {
            let cancel = state
                .jobs
                .cancel_job(owner, &job_id)
                .await
                .unwrap_or(Cancel::NotRunning);
            if cancel == Cancel::Elsewhere {
                // Another node runs it: ask it (its end comes back as an update).
                let (jobs, owner) = (state.jobs.clone(), owner.clone());
                actix_web::rt::spawn(async move {
                    let _ = jobs.cancel_elsewhere(&owner, &job_id).await;
                });
            }
            let cancelled = cancel != Cancel::NotRunning;
            if !cancelled {
                let error = ServerMessage::Error {
                    seq: sent,
                    code: ProtocolErrorCode::NotFound,
                    message: "no running upload with that id".into(),
                };
                send(session, &error).await?;
            }
            Ok(None)
        }
    }
}
