//! Secrets (L2, L3): a password given in a URL never appears in the `Debug`
//! or `Display` of locks, guards or errors, with the right password or a
//! wrong one, nor in `lockrun`'s messages; tokens are never shown whole.

mod support;

use std::time::Duration;

use redis_mutex::{Error, Lock, WaitPolicy};
use support::RedisServer;

const SENTINEL: &str = "s3ntinel-pw-5f2c9e";
const WRONG: &str = "wr0ng-s3ntinel-8d41";

fn assert_clean(what: &str, shown: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!shown.contains(secret), "{what} shows a secret: {shown}");
    }
}

fn both<T: std::fmt::Debug + std::fmt::Display>(value: &T) -> String {
    format!("{value:?} {value} {value:#?}")
}

fn error_chain(error: &Error) -> String {
    let mut shown = both(error);
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        shown.push_str(&format!(" {cause} {cause:?}"));
        source = cause.source();
    }
    shown
}

/// A server with `requirepass SENTINEL`. (Set after start: the harness
/// checks a new server without a password; it sends it no commands after.)
fn protected() -> RedisServer {
    let server = RedisServer::start();
    server.cmd(&["CONFIG", "SET", "requirepass", SENTINEL]);
    server
}

#[tokio::test]
async fn the_right_password_is_never_shown() {
    let server = protected();
    let url = format!("redis://:{SENTINEL}@127.0.0.1:{}/", server.port());
    let builder = Lock::builder("secrets:lock")
        .ttl(Duration::from_secs(5))
        .wait(WaitPolicy::timeout(Duration::from_millis(50)));
    assert_clean("builder", &format!("{builder:?}"), &[SENTINEL]);
    let lock = builder.connect(url.as_str()).await.unwrap();
    assert_clean("lock", &format!("{lock:?} {lock:#?}"), &[SENTINEL]);

    let guard = lock.acquire().await.unwrap();
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let token: String = redis::cmd("GET")
        .arg("secrets:lock")
        .query(&mut admin)
        .unwrap();
    let secrets = [SENTINEL, token.as_str()];
    assert_clean("guard", &format!("{guard:?} {guard:#?}"), &secrets);
    assert_clean("lease", &format!("{:?}", guard.lease()), &secrets);
    let busy = lock.acquire().await.unwrap_err();
    assert_clean("busy", &error_chain(&busy), &secrets);
    for report in lock.diagnose().await.unwrap() {
        assert_clean("report", &format!("{report} {report:?}"), &secrets);
    }

    let _: () = redis::cmd("DEL")
        .arg("secrets:lock")
        .query(&mut admin)
        .unwrap();
    let not_held = guard.release().await.unwrap_err();
    assert_clean("not held", &error_chain(&not_held), &secrets);

    // Errors from a server that went away.
    server.stop();
    let down = lock.acquire().await.unwrap_err();
    assert_clean("down", &error_chain(&down), &secrets);
    let refused = Lock::builder("secrets:lock")
        .connect(url.as_str())
        .await
        .unwrap_err();
    assert_clean("refused", &error_chain(&refused), &secrets);
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error_that_does_not_show_it() {
    let server = protected();
    for url in [
        format!("redis://:{WRONG}@127.0.0.1:{}/", server.port()),
        format!("redis://default:{WRONG}@127.0.0.1:{}/", server.port()),
        format!("redis://127.0.0.1:{}/", server.port()),
    ] {
        // A wrong password fails the connect; none at all, the first command.
        let err = match Lock::builder("secrets:lock").connect(url.as_str()).await {
            Err(err) => err,
            Ok(lock) => lock.acquire().await.unwrap_err(),
        };
        let shown = error_chain(&err);
        assert_clean("wrong password", &shown, &[WRONG, SENTINEL]);
        assert!(
            matches!(err, Error::AuthenticationFailed { .. }),
            "{url}: {err:?}"
        );
        assert!(err.to_string().contains("credentials"), "{err}");
        assert!(!err.is_retryable(), "{err:?}");
    }
}
