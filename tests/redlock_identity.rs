//! A Redlock counts each Redis server once, whatever names it is reached by,
//! and connecting to one is not held up by a stalled node.

mod support;

use std::time::{Duration, Instant};

use redis_mutex::{Error, Lock, NodeFailureReason, Operation, WaitPolicy};
use support::RedisServer;

const NODE_TIMEOUT: Duration = Duration::from_millis(100);

fn invalid_nodes(result: redis_mutex::Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(Error::InvalidArgument {
            field: "nodes",
            reason,
        }) => reason,
        other => panic!("expected InvalidArgument for nodes, got {other:?}"),
    }
}

fn builder(key: &str) -> redis_mutex::LockBuilder {
    Lock::builder(key)
        .ttl(Duration::from_secs(5))
        .node_timeout(NODE_TIMEOUT)
        .wait(WaitPolicy::no_wait())
}

/// Acquires and releases until `server` got the lock's key in an acquire.
async fn until_it_votes(lock: &Lock, server: &RedisServer, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let guard = lock.acquire().await.unwrap();
        let voted = server.exists(key);
        guard.release().await.unwrap();
        if voted {
            return;
        }
        assert!(Instant::now() < deadline, "the node never voted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn one_server_under_two_names_is_refused_when_connecting() {
    let p = RedisServer::start();
    let q = RedisServer::start();
    let urls = [
        format!("redis://localhost:{}/", p.port()),
        format!("redis://127.0.0.1:{}/", p.port()),
        q.url(),
    ];
    let reason = invalid_nodes(builder("id:names").connect_quorum(urls).await);
    assert!(
        reason.contains(&format!("node 0 (localhost:{})", p.port()))
            && reason.contains(&format!("node 1 (127.0.0.1:{})", p.port()))
            && reason.contains("one Redis server"),
        "{reason}"
    );
    // Two databases of one server die together as well.
    let urls = [
        format!("redis://127.0.0.1:{}/3", p.port()),
        q.url(),
        format!("redis://localhost:{}/4", p.port()),
    ];
    let reason = invalid_nodes(builder("id:dbs").connect_quorum(urls).await);
    assert!(
        reason.contains("node 0") && reason.contains("node 2"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_connection_given_twice_is_refused_at_the_first_acquire_and_leaves_nothing() {
    let p = RedisServer::start();
    let q = RedisServer::start();
    let c = p.manager().await;
    let d = q.manager().await;
    let lock = builder("id:clone").build_quorum([c.clone(), c, d]).unwrap();
    let reason = invalid_nodes(lock.acquire().await);
    assert!(reason.contains("node 0 and node 1"), "{reason}");
    // Refused for good, and no step ran before the refusal.
    let reason = invalid_nodes(lock.try_acquire().await);
    assert!(reason.contains("node 0 and node 1"), "{reason}");
    assert!(!p.exists("id:clone") && !q.exists("id:clone"));
    assert_eq!(p.command_calls("set") + p.command_calls("eval"), 0);
}

#[tokio::test]
async fn independent_connections_to_one_server_are_refused_too() {
    let p = RedisServer::start();
    let q = RedisServer::start();
    let lock = builder("id:two-managers")
        .build_quorum([p.manager().await, q.manager().await, p.manager().await])
        .unwrap();
    let reason = invalid_nodes(lock.acquire().await);
    assert!(reason.contains("node 0 and node 2"), "{reason}");
}

#[tokio::test]
async fn distinct_servers_from_build_quorum_work_after_one_identification() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let mut connections = Vec::new();
    for server in &servers {
        connections.push(server.manager().await);
        server.reset_stats();
    }
    let lock = builder("id:fine").build_quorum(connections).unwrap();
    for _ in 0..3 {
        lock.acquire().await.unwrap().release().await.unwrap();
    }
    // One identification round, then none.
    for server in &servers {
        assert_eq!(server.command_calls("info"), 1);
    }
}

#[tokio::test]
async fn a_node_down_when_connecting_votes_once_it_is_identified() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    servers[2].stop();
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let lock = builder("id:late").connect_quorum(urls).await.unwrap();
    lock.acquire().await.unwrap().release().await.unwrap();

    servers[2].restart();
    // Steps ask the unidentified node beside their work; it is identified
    // in a round with both others, and votes from the step after.
    until_it_votes(&lock, &servers[2], "id:late").await;
    // Now node 2's vote makes the majority without node 0.
    servers[0].stop();
    lock.acquire().await.unwrap().release().await.unwrap();
}

#[tokio::test]
async fn a_stalled_node_costs_connecting_about_one_node_timeout() {
    let servers: Vec<RedisServer> = (0..5).map(|_| RedisServer::start()).collect();
    servers[4].pause();
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let started = Instant::now();
    let lock = builder("id:stalled").connect_quorum(urls).await.unwrap();
    let connecting = started.elapsed();
    // It used to wait out the connection's timeouts and retries (3.6 s).
    assert!(
        connecting < NODE_TIMEOUT * 5,
        "connecting took {connecting:?} with one node stalled"
    );
    lock.acquire().await.unwrap().release().await.unwrap();

    servers[4].resume();
    // Once it answers it is identified and votes: with two others stopped,
    // the majority needs it.
    until_it_votes(&lock, &servers[4], "id:stalled").await;
    servers[0].stop();
    servers[1].stop();
    lock.acquire().await.unwrap().release().await.unwrap();
}

#[tokio::test]
async fn a_majority_stalled_fails_connecting_within_about_a_second() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    servers[0].pause();
    servers[1].pause();
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let started = Instant::now();
    let result = builder("id:majority-stalled").connect_quorum(urls).await;
    let connecting = started.elapsed();
    match result {
        Err(Error::QuorumNotReached {
            operation: Operation::Connect,
            granted: 1,
            required: 2,
            failures,
            ..
        }) => {
            assert!(failures.iter().map(|f| f.node).eq([0, 1]), "{failures:?}");
            assert!(
                failures
                    .iter()
                    .all(|f| matches!(&f.reason, NodeFailureReason::Unidentified(Some(_)))),
                "{failures:?}"
            );
        }
        other => panic!("expected a quorum error, got {other:?}"),
    }
    assert!(connecting < Duration::from_secs(3), "took {connecting:?}");
    servers[0].resume();
    servers[1].resume();
}

#[tokio::test]
async fn a_server_that_refuses_info_is_named_as_the_reason() {
    let p = RedisServer::start();
    p.cmd(&[
        "ACL", "SETUSER", "noinfo", "on", ">pw", "~*", "&*", "+@all", "-info",
    ]);
    let url = format!("redis://noinfo:pw@127.0.0.1:{}/", p.port());
    let err = builder("id:noinfo")
        .connect_quorum([url])
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("INFO server")
            && text
                .to_lowercase()
                .contains("no permissions to run the 'info' command"),
        "{text}"
    );
    // Asking again would get the same answer.
    assert!(!err.is_retryable());
    assert!(!text.contains("pw@"), "{text}");
}
