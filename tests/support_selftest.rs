//! Self-test of the `tests/support` harness (real redis-server processes).

mod support;

use std::process::Command;
use std::time::Duration;

use redis::AsyncCommands;
use support::RedisServer;

fn pid_alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run kill -0")
        .success()
}

#[test]
fn parses_commandstats() {
    let info = "# Commandstats\r\n\
                cmdstat_set:calls=3,usec=10,usec_per_call=3.33,rejected_calls=0,failed_calls=0\r\n\
                cmdstat_script|load:calls=1,usec=5\r\n\
                cmdstat_evalsha:calls=12,usec=50\r\n";
    assert_eq!(support::parse_command_calls(info, "set"), 3);
    assert_eq!(support::parse_command_calls(info, "SET"), 3);
    assert_eq!(support::parse_command_calls(info, "evalsha"), 12);
    assert_eq!(support::parse_command_calls(info, "eval"), 0);
    assert_eq!(support::parse_command_calls(info, "script|load"), 1);
}

#[tokio::test]
async fn start_conn_and_helpers() {
    let server = RedisServer::start();
    assert!(server.is_running());
    assert!(server.pid() > 0);
    assert_eq!(
        server.url(),
        format!("redis://127.0.0.1:{}/", server.port())
    );
    assert!(server.dir().join("redis.log").is_file());

    server.reset_stats();
    assert_eq!(server.command_calls("set"), 0);

    let mut conn = server.conn().await;
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("PX")
        .arg(100_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let got: Option<String> = conn.get("k").await.unwrap();
    assert_eq!(got.as_deref(), Some("v"));

    assert_eq!(server.command_calls("set"), 1);
    assert_eq!(server.command_calls("SET"), 1);
    assert_eq!(server.get("k").as_deref(), Some("v"));
    assert_eq!(server.get("missing"), None);
    assert!(server.exists("k"));
    assert!(!server.exists("missing"));
    let pttl = server.pttl("k");
    assert!(pttl > 90_000 && pttl <= 100_000, "pttl = {pttl}");
    assert_eq!(server.pttl("missing"), -2);

    // Admin commands, including DEBUG (enabled for local connections).
    assert_eq!(server.cmd(&["HSET", "h", "f", "1"]), redis::Value::Int(1));
    assert_eq!(server.cmd(&["SCRIPT", "FLUSH"]), redis::Value::Okay);
    assert_eq!(server.cmd(&["DEBUG", "SLEEP", "0"]), redis::Value::Okay);
    assert!(server.try_cmd(&["NOSUCHCOMMAND"]).is_err());

    let mut mgr = server.manager().await;
    let n: i64 = mgr.incr("counter", 1).await.unwrap();
    assert_eq!(n, 1);

    assert!(server.log().contains("Ready to accept connections"));
}

#[tokio::test]
async fn start_with_extra_args() {
    let server = RedisServer::start_with(&["--maxmemory", "10mb", "--hz", "50"]);
    let v = server.cmd(&["CONFIG", "GET", "maxmemory"]);
    let pairs: Vec<String> = redis::from_redis_value(v).unwrap();
    assert_eq!(pairs, vec!["maxmemory".to_string(), "10485760".to_string()]);
    let v = server.cmd(&["CONFIG", "GET", "save"]);
    let pairs: Vec<String> = redis::from_redis_value(v).unwrap();
    assert_eq!(pairs, vec!["save".to_string(), String::new()]);
}

#[tokio::test]
async fn pause_and_resume() {
    let server = RedisServer::start();
    let mut conn = server.conn().await;
    let _: () = conn.set("k", "v").await.unwrap();

    server.pause();
    assert!(server.is_paused());
    assert!(server.is_running());
    let res = tokio::time::timeout(
        Duration::from_millis(300),
        redis::cmd("PING").query_async::<String>(&mut conn),
    )
    .await;
    assert!(
        res.is_err(),
        "command should time out while paused: {res:?}"
    );

    server.resume();
    assert!(!server.is_paused());
    let pong: String = tokio::time::timeout(
        Duration::from_secs(5),
        redis::cmd("PING").query_async(&mut conn),
    )
    .await
    .expect("no timeout after resume")
    .unwrap();
    assert_eq!(pong, "PONG");
    assert_eq!(server.get("k").as_deref(), Some("v"));
}

#[tokio::test]
async fn stop_and_restart() {
    let server = RedisServer::start();
    let port = server.port();
    let old_pid = server.pid();
    let mut mgr = server.manager().await;
    let _: () = mgr.set("k", "v").await.unwrap();

    server.stop();
    assert!(!server.is_running());
    assert!(!pid_alive(old_pid));
    assert!(server.try_cmd(&["PING"]).is_err());
    let res: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut mgr).await;
    assert!(res.is_err());
    server.stop(); // idempotent

    server.restart();
    assert!(server.is_running());
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), old_pid);
    assert_eq!(server.get("k"), None, "no persistence across restarts");

    // The connection manager reconnects (the first command may still fail).
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(pong) = redis::cmd("PING").query_async::<String>(&mut mgr).await {
            assert_eq!(pong, "PONG");
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "connection manager did not reconnect after restart");

    // Restart of a running (even paused) server works too.
    server.pause();
    server.restart();
    assert!(!server.is_paused());
    assert_eq!(
        server.cmd(&["PING"]),
        redis::Value::SimpleString("PONG".into())
    );
    assert!(server.log().matches("Ready to accept connections").count() >= 3);
}

#[tokio::test]
async fn drop_kills_process_and_removes_dir() {
    let server = RedisServer::start();
    let pid = server.pid();
    let dir = server.dir().to_path_buf();
    assert!(pid_alive(pid));
    drop(server);
    assert!(!pid_alive(pid), "redis-server {pid} still alive after drop");
    assert!(!dir.exists(), "temp dir {} not removed", dir.display());

    // Also when dropped while paused.
    let server = RedisServer::start();
    let pid = server.pid();
    server.pause();
    drop(server);
    assert!(
        !pid_alive(pid),
        "paused redis-server {pid} still alive after drop"
    );
}

#[test]
fn many_servers_in_parallel() {
    let handles: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(RedisServer::start))
        .collect();
    let servers: Vec<RedisServer> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut ports: Vec<u16> = servers.iter().map(RedisServer::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), servers.len());
    for s in &servers {
        assert_eq!(s.cmd(&["PING"]), redis::Value::SimpleString("PONG".into()));
    }
}
