//! TLS (L4): `rediss://` against a redis-server with a TLS port and a test
//! CA made at test time. Certificates are verified by default against the
//! system trust store (which honours `SSL_CERT_FILE`); there is no way to
//! turn verification off. Without the `tls` feature, `rediss://` fails with
//! a clear error.
//!
//! Run with `cargo test --features tls --test tls` (CI does).

mod support;

use redis_mutex::Lock;

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = format!("{error} {error:?}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(" {cause} {cause:?}"));
        source = cause.source();
    }
    text
}

#[cfg(not(feature = "tls"))]
#[tokio::test]
async fn without_the_tls_feature_rediss_is_refused_clearly() {
    let err = Lock::builder("tls:lock")
        .connect("rediss://127.0.0.1:1/")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            redis_mutex::Error::Redis {
                operation: redis_mutex::Operation::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        chain(&err).to_lowercase().contains("tls"),
        "{}",
        chain(&err)
    );
}

/// Without the feature the tests of a TLS server are compiled out: say so.
#[cfg(not(feature = "tls"))]
#[test]
fn tls_server_tests_skipped_without_the_tls_feature() {
    support::skipped("the tests of rediss:// against a TLS server need `--features tls`");
}

#[cfg(feature = "tls")]
mod with_tls {
    use super::*;

    use std::process::{Command, Stdio};
    use std::time::Duration;

    use redis::TlsCertificates;
    use support::lockrun_bin;
    use support::tls::{TestCa, skip_without_tls, tls_url};

    fn trusting(ca: &TestCa, url: &str) -> redis::Client {
        redis::Client::build_with_tls(
            url,
            TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.ca_pem()),
            },
        )
        .unwrap()
    }

    /// The last command of each client connected to `port` (`CLIENT LIST`'s
    /// `cmd=` of the clients whose local address is that port): the
    /// harness's own connections use the plain port, the lock's the TLS one.
    fn last_commands_on(server: &support::RedisServer, port: u16) -> Vec<String> {
        let list: String = redis::from_redis_value(server.cmd(&["CLIENT", "LIST"])).unwrap();
        let laddr = format!(" laddr=127.0.0.1:{port} ");
        list.lines()
            .filter(|line| line.contains(&laddr))
            .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("cmd=")))
            .map(str::to_owned)
            .collect()
    }

    #[tokio::test]
    async fn rediss_with_the_test_ca_locks_and_releases() {
        if skip_without_tls() {
            return;
        }
        let ca = TestCa::new();
        let (server, port) = ca.server();
        let lock = Lock::builder("tls:lock")
            .ttl(Duration::from_secs(5))
            .client(&trusting(&ca, &tls_url(port)))
            .await
            .unwrap();
        server.reset_stats();
        let guard = lock.acquire().await.unwrap();
        // The one SET came from the client on the TLS port.
        assert_eq!(server.command_calls("set"), 1);
        assert_eq!(last_commands_on(&server, port), ["set"], "SET over TLS");
        assert!(server.exists("tls:lock"));
        assert!(guard.is_held().await.unwrap());
        guard.extend(Duration::from_secs(5)).await.unwrap();
        guard.release().await.unwrap();
        assert!(!server.exists("tls:lock"));
        let last = last_commands_on(&server, port);
        assert!(
            last == ["evalsha"] || last == ["eval"],
            "the release went over TLS: {last:?}"
        );
    }

    #[tokio::test]
    async fn verification_is_on_by_default_and_cannot_be_skipped() {
        if skip_without_tls() {
            return;
        }
        let ca = TestCa::new();
        let (_server, port) = ca.server();
        // The system trust store does not know the test CA.
        let err = Lock::builder("tls:lock")
            .connect(tls_url(port))
            .await
            .unwrap_err();
        let text = chain(&err).to_lowercase();
        assert!(text.contains("certificate"), "{text}");
        // A CA that did not sign the server's certificate.
        let other = TestCa::new();
        let err = Lock::builder("tls:lock")
            .client(&trusting(&other, &tls_url(port)))
            .await
            .unwrap_err();
        assert!(
            chain(&err).to_lowercase().contains("certificate"),
            "{}",
            chain(&err)
        );
        // `#insecure` needs a redis feature this crate does not enable.
        let insecure = format!("{}#insecure", tls_url(port));
        let refused = match redis::Client::open(insecure.as_str()) {
            Err(e) => chain(&e),
            Ok(client) => chain(&Lock::builder("tls:lock").client(&client).await.unwrap_err()),
        };
        assert!(refused.to_lowercase().contains("insecure"), "{refused}");
    }

    /// The server's certificate must name the host in the URL: a trusted
    /// certificate for another name is refused, and one for `localhost`
    /// only is accepted through `localhost` and refused through
    /// `127.0.0.1`.
    #[tokio::test]
    async fn a_certificate_for_another_host_name_is_refused() {
        if skip_without_tls() {
            return;
        }
        let elsewhere = TestCa::for_names("DNS:redis.example");
        let (_server, port) = elsewhere.server();
        let err = Lock::builder("tls:lock")
            .client(&trusting(&elsewhere, &tls_url(port)))
            .await
            .unwrap_err();
        let text = chain(&err);
        assert!(text.to_lowercase().contains("certificate"), "{text}");
        assert!(text.contains("NotValidForName"), "{text}");

        let by_name = TestCa::for_names("DNS:localhost");
        let (_server, port) = by_name.server();
        let err = Lock::builder("tls:lock")
            .client(&trusting(&by_name, &tls_url(port)))
            .await
            .unwrap_err();
        assert!(chain(&err).contains("NotValidForName"), "{}", chain(&err));
        let lock = Lock::builder("tls:lock")
            .client(&trusting(&by_name, &format!("rediss://localhost:{port}/")))
            .await
            .unwrap();
        lock.acquire().await.unwrap().release().await.unwrap();
    }

    /// `lockrun` built with the feature takes `rediss://` URLs, and trusts a
    /// CA given by `SSL_CERT_FILE` (rustls-native-certs reads it).
    #[test]
    fn lockrun_takes_rediss_urls_and_honours_ssl_cert_file() {
        if skip_without_tls() {
            return;
        }
        let ca = TestCa::new();
        let (server, port) = ca.server();
        let lockrun = |cert_file: Option<&std::path::Path>| {
            let mut command = Command::new(lockrun_bin());
            command
                .env_remove("REDIS_URL")
                .env_remove("SSL_CERT_DIR")
                .args(["--url", &tls_url(port), "--key", "tls:run", "--"])
                .args(["sh", "-c", "echo ran"])
                .stdin(Stdio::null());
            match cert_file {
                Some(file) => command.env("SSL_CERT_FILE", file),
                None => command.env_remove("SSL_CERT_FILE"),
            };
            command.output().unwrap()
        };
        let trusted = lockrun(Some(&ca.ca_file()));
        assert_eq!(trusted.status.code(), Some(0), "{trusted:?}");
        assert_eq!(String::from_utf8_lossy(&trusted.stdout), "ran\n");
        assert!(!server.exists("tls:run"), "released");

        let untrusted = lockrun(None);
        assert_eq!(untrusted.status.code(), Some(69), "{untrusted:?}");
        let stderr = String::from_utf8_lossy(&untrusted.stderr).to_lowercase();
        assert!(stderr.contains("certificate"), "{stderr}");
    }
}
