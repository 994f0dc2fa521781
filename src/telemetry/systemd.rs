//! The systemd side of running as a service: `sd_notify` (readiness,
//! stopping, watchdog, status), the watchdog interval systemd asks for, and
//! the sockets it hands over with socket activation (`LISTEN_FDS`).
//!
//! Written against the protocol rather than with the `sd-notify` crate: the
//! version that fits our `rust-version` 1.80 (0.4; 0.5 needs 1.82) would still
//! leave the unsafe part here — telling datagram from stream sockets with
//! `getsockopt` and taking ownership of the descriptors — and replace only the
//! few lines that read the environment.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Tells systemd (when it started us with `NOTIFY_SOCKET`) about our state:
/// `READY=1`, `STOPPING=1`, `WATCHDOG=1`, `STATUS=…`. Without the variable it
/// does nothing.
pub fn sd_notify(state: &str) {
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket name.
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), std::path::Path::new(&path))
    };
    if let Err(e) = sent {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`, for our PID), halved
/// as systemd recommends.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Sockets handed over by systemd socket activation.
#[derive(Debug, Default)]
pub struct InheritedSockets {
    pub udp: Vec<std::net::UdpSocket>,
    pub tcp: Vec<std::net::TcpListener>,
}

/// Takes the sockets passed with `LISTEN_FDS` (if `LISTEN_PID` is us): datagram
/// sockets become UDP inputs, stream sockets TCP listeners. The variables are
/// removed so no child inherits them.
pub fn inherited_sockets() -> InheritedSockets {
    let mut out = InheritedSockets::default();
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let n: RawFd = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // SAFETY of the environment edits: done at start-up, before threads start.
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    if !pid_ok {
        return out;
    }
    const FIRST: RawFd = 3;
    for fd in FIRST..FIRST + n {
        let mut ty: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `ty`.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_TYPE,
                (&mut ty as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            tracing::warn!(fd, "inherited descriptor is not a socket; ignored");
            continue;
        }
        // SAFETY: systemd passed us ownership of descriptors 3..3+LISTEN_FDS.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        match ty {
            libc::SOCK_DGRAM => out.udp.push(std::net::UdpSocket::from(owned)),
            libc::SOCK_STREAM => out.tcp.push(std::net::TcpListener::from(owned)),
            other => tracing::warn!(
                fd,
                socket_type = other,
                "inherited socket of unknown type; ignored"
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sd_notify_sends_to_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        std::env::set_var("NOTIFY_SOCKET", &path);
        sd_notify("READY=1");
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
