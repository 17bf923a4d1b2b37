//! The permission proxy the remote tests put in front of the GCS emulator.

use std::path::Path;
use std::process::Command;

/// The permission proxy in front of the emulator: `creator` may only create
/// objects (the server's service account), `pruner` may also read, list and
/// delete (the operator's credential).
pub struct Proxy {
    child: std::process::Child,
    pub port: u16,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        Proxy::with_grants(
            upstream,
            &["creator=create", "pruner=create,get,list,delete"],
        )
    }

    /// A proxy with these grants (`TOKEN=perm,perm`; an empty token is a
    /// request without credentials, as against an emulator).
    pub fn with_grants(upstream: u16, grants: &[&str]) -> Proxy {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proxy/gcs_iam.py");
        let child = Command::new("python3")
            .arg(script)
            .args([port.to_string(), upstream.to_string()])
            .args(grants)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed().as_secs() < 30, "proxy did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Proxy { child, port }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
