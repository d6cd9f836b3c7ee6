//! Self-test of the fault proxy in `tests/support/proxy.rs`: each mode does what it says,
//! and the counters see what reached the server.

mod support;

use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use support::RedisServer;
use support::proxy::{Mode, Proxy, parse_for_selftest};
use tokio::time::Instant;

async fn connect(
    proxy: &Proxy,
    response_timeout: Duration,
) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(Duration::from_secs(1)));
    redis::Client::open(proxy.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

async fn set(conn: &mut MultiplexedConnection, key: &str) -> redis::RedisResult<()> {
    redis::cmd("SET").arg(key).arg("v").query_async(conn).await
}

#[test]
fn the_parser_splits_commands_across_and_within_chunks() {
    let two = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*1\r\n$4\r\nping\r\n";
    assert_eq!(parse_for_selftest(two), ["SET", "PING"]);
    assert!(parse_for_selftest(&two[..20]).is_empty(), "incomplete");
    assert_eq!(parse_for_selftest(b"PING\r\n"), ["PING"]);
    // A value containing CRLF is bulk, not a line.
    assert_eq!(
        parse_for_selftest(b"*2\r\n$3\r\nGET\r\n$4\r\na\r\nb\r\n"),
        ["GET"]
    );
}

#[tokio::test]
async fn pass_forwards_and_counts() {
    let server = RedisServer::start();
    let proxy = Proxy::to(&server);
    let mut conn = connect(&proxy, Duration::from_secs(2)).await.unwrap();
    set(&mut conn, "p:k").await.unwrap();
    assert_eq!(server.get("p:k").as_deref(), Some("v"));
    assert_eq!(proxy.forwarded("set"), 1);
    assert!(proxy.bytes_to_server() > 0 && proxy.bytes_to_client() > 0);
    assert_eq!(proxy.accepted(), 1);
}

#[tokio::test]
async fn delay_holds_replies_back_but_not_commands() {
    let server = RedisServer::start();
    let proxy = Proxy::to(&server);
    let mut conn = connect(&proxy, Duration::from_secs(5)).await.unwrap();
    proxy.set(Mode::Delay(Duration::from_millis(400)));
    let started = Instant::now();
    let sent = tokio::spawn(async move { set(&mut conn, "d:k").await });
    proxy.wait_forwarded("set", 1, Duration::from_secs(1)).await;
    // The server ran it long before the client hears back.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.get("d:k").as_deref(), Some("v"));
    assert!(!sent.is_finished());
    sent.await.unwrap().unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test]
async fn drop_replies_runs_the_command_and_loses_the_answer_then_reset_breaks_the_connection() {
    let server = RedisServer::start();
    let proxy = Proxy::to(&server);
    let mut conn = connect(&proxy, Duration::from_millis(300)).await.unwrap();
    proxy.set(Mode::DropReplies);
    let err = set(&mut conn, "dr:k").await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(server.get("dr:k").as_deref(), Some("v"), "it ran");
    assert_eq!(proxy.forwarded("set"), 1);

    proxy.set(Mode::Pass);
    proxy.reset_connections();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = set(&mut conn, "dr:k2").await.unwrap_err();
    assert!(err.is_connection_dropped() || err.is_io_error(), "{err:?}");
    // New connections pass again.
    let mut fresh = connect(&proxy, Duration::from_secs(2)).await.unwrap();
    set(&mut fresh, "dr:k3").await.unwrap();
}

#[tokio::test]
async fn blackhole_delivers_nothing() {
    let server = RedisServer::start();
    let proxy = Proxy::to(&server);
    let mut conn = connect(&proxy, Duration::from_millis(300)).await.unwrap();
    proxy.set(Mode::Blackhole);
    let err = set(&mut conn, "bh:k").await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(!server.exists("bh:k"));
    assert_eq!(proxy.forwarded("set"), 0);
}

#[tokio::test]
async fn reset_breaks_open_and_new_connections() {
    let server = RedisServer::start();
    let proxy = Proxy::to(&server);
    let mut conn = connect(&proxy, Duration::from_secs(2)).await.unwrap();
    proxy.set(Mode::Reset);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = set(&mut conn, "r:k").await.unwrap_err();
    assert!(err.is_connection_dropped() || err.is_io_error(), "{err:?}");
    assert!(connect(&proxy, Duration::from_secs(2)).await.is_err());
    assert!(!server.exists("r:k"));
    proxy.set(Mode::Pass);
    let mut fresh = connect(&proxy, Duration::from_secs(2)).await.unwrap();
    set(&mut fresh, "r:k").await.unwrap();
}

#[tokio::test]
async fn refuse_new_refuses_connections_and_keeps_open_ones() {
    let server = RedisServer::start();
    let proxy = Proxy::to(&server);
    let mut conn = connect(&proxy, Duration::from_secs(2)).await.unwrap();
    proxy.set(Mode::RefuseNew);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = connect(&proxy, Duration::from_secs(2)).await.unwrap_err();
    assert!(err.is_connection_refusal(), "{err:?}");
    set(&mut conn, "rn:k").await.unwrap();
    proxy.set(Mode::Pass);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut fresh = connect(&proxy, Duration::from_secs(2)).await.unwrap();
    set(&mut fresh, "rn:k2").await.unwrap();
}
