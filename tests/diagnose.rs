//! `Lock::diagnose` against real redis-servers: the settings that weaken
//! locks are reported, and settings the ACL user may not read are unknown
//! rather than an error.

mod support;

use std::time::Duration;

use redis_mutex::{Lock, Weakness};
use support::RedisServer;

async fn lock_as(server: &RedisServer, user: Option<&str>) -> Lock {
    let url = match user {
        Some(user) => format!("redis://{user}:pw@127.0.0.1:{}/", server.port()),
        None => server.url(),
    };
    Lock::builder("diagnose:lock")
        .ttl(Duration::from_secs(5))
        .connect(url)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_test_server_reports_its_settings_and_no_persistence() {
    let server = RedisServer::start();
    let lock = lock_as(&server, None).await;
    let reports = lock.diagnose().await.unwrap();
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert_eq!(report.node, 0);
    assert!(
        report
            .version
            .as_deref()
            .is_some_and(|v| v.starts_with('7'))
    );
    assert_eq!(report.maxmemory_policy.as_deref(), Some("noeviction"));
    assert_eq!(report.maxmemory, Some(0));
    assert_eq!(report.appendonly, Some(false));
    assert_eq!(report.appendfsync.as_deref(), Some("everysec"));
    assert_eq!(report.role.as_deref(), Some("master"));
    assert_eq!(report.connected_replicas, Some(0));
    // The harness runs without persistence (`--appendonly no`).
    assert_eq!(report.weaknesses(), [Weakness::NoPersistence]);
    assert!(report.to_string().contains("noeviction"), "{report}");
}

#[tokio::test]
async fn eviction_and_lossy_fsync_are_weaknesses_and_noeviction_is_not() {
    let server = RedisServer::start();
    let lock = lock_as(&server, None).await;
    server.cmd(&["CONFIG", "SET", "maxmemory", "100mb"]);
    server.cmd(&["CONFIG", "SET", "maxmemory-policy", "volatile-lru"]);
    server.cmd(&["CONFIG", "SET", "appendonly", "yes"]);
    let weaknesses = lock.diagnose().await.unwrap()[0].weaknesses();
    assert_eq!(
        weaknesses,
        [
            Weakness::Eviction {
                policy: "volatile-lru".into()
            },
            Weakness::LossyFsync {
                appendfsync: "everysec".into()
            }
        ]
    );
    assert!(weaknesses[0].to_string().contains("use noeviction"));

    server.cmd(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    server.cmd(&["CONFIG", "SET", "appendfsync", "always"]);
    assert_eq!(lock.diagnose().await.unwrap()[0].weaknesses(), []);
}

#[tokio::test]
async fn acl_denied_settings_are_unknown_not_an_error() {
    let server = RedisServer::start();
    // May read INFO but not CONFIG: INFO tells most of it.
    server.cmd(&[
        "ACL", "SETUSER", "noconfig", "on", ">pw", "~*", "+@all", "-config",
    ]);
    // May read neither.
    server.cmd(&[
        "ACL", "SETUSER", "blind", "on", ">pw", "~*", "+@all", "-config", "-info",
    ]);

    let report = lock_as(&server, Some("noconfig"))
        .await
        .diagnose()
        .await
        .unwrap();
    assert_eq!(report[0].maxmemory_policy.as_deref(), Some("noeviction"));
    assert_eq!(report[0].appendonly, Some(false));
    assert_eq!(report[0].appendfsync, None);

    let report = lock_as(&server, Some("blind"))
        .await
        .diagnose()
        .await
        .unwrap();
    let report = &report[0];
    assert_eq!(report.maxmemory_policy, None);
    assert_eq!(report.role, None);
    assert_eq!(report.appendonly, None);
    assert!(
        report.weaknesses().contains(&Weakness::Unknown {
            setting: "maxmemory-policy"
        }),
        "{:?}",
        report.weaknesses()
    );
    assert!(report.to_string().contains("unknown"), "{report}");
}

#[tokio::test]
async fn a_server_that_is_down_is_an_error() {
    let server = RedisServer::start();
    let lock = lock_as(&server, None).await;
    server.stop();
    let err = lock.diagnose().await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("diagnose"), "{err}");
}

/// `INFO` is not always UTF-8: any client's error reply lands in its
/// `errorstats` section under the reply's first word, whatever its bytes.
/// The report is still read.
#[tokio::test]
async fn a_non_utf8_line_in_info_does_not_fail_the_report() {
    let server = RedisServer::start();
    let lock = lock_as(&server, None).await;
    let mut conn = server.conn().await;
    let _ = redis::cmd("EVAL")
        .arg("return redis.error_reply(string.char(255, 254) .. ' raw')")
        .arg(0)
        .query_async::<redis::Value>(&mut conn)
        .await;
    // The `redis` crate drops a connection whose error reply it cannot read.
    let mut conn = server.conn().await;
    let info: Vec<u8> = redis::cmd("INFO").query_async(&mut conn).await.unwrap();
    assert!(std::str::from_utf8(&info).is_err(), "INFO is not UTF-8 now");
    let report = lock.diagnose().await.unwrap().remove(0);
    assert_eq!(report.maxmemory_policy.as_deref(), Some("noeviction"));
    assert_eq!(report.role.as_deref(), Some("master"));
}
