//! systemd's service notification protocol (sd_notify(3)), for `xlb run` under a
//! `Type=notify` unit (`packaging/systemd/xlb.service`): READY=1 once the dataplane
//! serves, RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 on the way out,
//! WATCHDOG=1 from the supervisor loop, STATUS= for `systemctl status`.
//!
//! The protocol is one datagram of `KEY=VALUE` lines per notification, sent to the
//! `AF_UNIX` socket named by `$NOTIFY_SOCKET`: a path (`/run/systemd/notify`) or, with a
//! leading `@`, a Linux abstract name. The manager learns the sender from the kernel's
//! `SCM_CREDENTIALS`, so any thread of the main process may send. No crate is needed: the
//! `sd-notify` crate does the same in free functions that read the environment on each
//! call, which the tests here could only drive by changing the process's environment.
//!
//! Outside systemd (`$NOTIFY_SOCKET` unset) there is no [`Notifier`], and the caller
//! sends nothing. The environment is read, never changed: xlb starts no child processes
//! that could inherit and misuse it.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// How long a notification may wait for room in the manager's receive queue before it
/// is given up: the supervisor loop must not stall behind a busy manager.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the notification socket could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` names no socket this module can reach.
    #[error("NOTIFY_SOCKET={address:?}: {reason}")]
    Address {
        /// The variable's value.
        address: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `$WATCHDOG_USEC` or `$WATCHDOG_PID` is not a positive decimal number.
    #[error(
        "{variable}={value:?} is not a positive decimal number; the unit's WatchdogSec= sets it"
    )]
    Watchdog {
        /// The variable's name.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// The local datagram socket could not be created.
    #[error("creating the notification socket: {0}")]
    Socket(io::Error),
    /// The manager did not take a notification.
    #[error("sending {message:?} to NOTIFY_SOCKET={address:?}: {source}; is the service manager still running?")]
    Send {
        /// The socket notified.
        address: String,
        /// The notification, one `KEY=VALUE` per line.
        message: String,
        /// The kernel's answer.
        source: io::Error,
    },
}

/// A connection to the service manager that started this process.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    target: SocketAddr,
    /// `$NOTIFY_SOCKET` as given, for error messages.
    address: String,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// The manager's socket from `$NOTIFY_SOCKET` and the watchdog timeout from
    /// `$WATCHDOG_USEC` (only when `$WATCHDOG_PID` is unset or this process's id).
    /// `Ok(None)` when the variable is unset or empty: not started by systemd, or by a
    /// unit that is not `Type=notify`.
    pub fn from_env() -> Result<Option<Notifier>, NotifyError> {
        let var = |name| std::env::var(name).ok();
        Notifier::from_vars(
            var("NOTIFY_SOCKET").as_deref(),
            var("WATCHDOG_USEC").as_deref(),
            var("WATCHDOG_PID").as_deref(),
            std::process::id(),
        )
    }

    /// [`Notifier::from_env`] over given variable values, for process `pid`.
    fn from_vars(
        notify_socket: Option<&str>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        pid: u32,
    ) -> Result<Option<Notifier>, NotifyError> {
        let Some(address) = notify_socket.filter(|a| !a.is_empty()) else {
            return Ok(None);
        };
        let target = socket_address(address)?;
        let socket = UnixDatagram::unbound().map_err(NotifyError::Socket)?;
        socket
            .set_write_timeout(Some(SEND_TIMEOUT))
            .map_err(NotifyError::Socket)?;
        Ok(Some(Notifier {
            socket,
            target,
            address: address.to_string(),
            watchdog: watchdog_timeout(watchdog_usec, watchdog_pid, pid)?,
        }))
    }

    /// The dataplane serves (READY=1): sent once at start, and again after each reload,
    /// failed or not, to end the RELOADING=1 state.
    pub fn ready(&self) -> Result<(), NotifyError> {
        self.send("READY=1")
    }

    /// A reload has begun (RELOADING=1): `systemctl` shows the unit as reloading until
    /// the next [`Notifier::ready`].
    pub fn reloading(&self) -> Result<(), NotifyError> {
        self.send("RELOADING=1")
    }

    /// Shutting down (STOPPING=1): sent when SIGTERM or SIGINT arrives, before the
    /// workers stop and XDP detaches.
    pub fn stopping(&self) -> Result<(), NotifyError> {
        self.send("STOPPING=1")
    }

    /// The supervisor is alive (WATCHDOG=1). Send it at least every half of
    /// [`Notifier::watchdog_interval`]; a miss makes systemd kill and restart xlb.
    pub fn watchdog(&self) -> Result<(), NotifyError> {
        self.send("WATCHDOG=1")
    }

    /// A one-line status for `systemctl status` (STATUS=...), e.g. the generation in
    /// force or why the last reload was refused. Line breaks become spaces: a newline
    /// would end the assignment.
    pub fn status(&self, text: &str) -> Result<(), NotifyError> {
        let line: String = text
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        self.send(&format!("STATUS={line}"))
    }

    /// The watchdog timeout the unit set (`WatchdogSec=`), or `None` when the watchdog
    /// is off or meant for another process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    fn send(&self, message: &str) -> Result<(), NotifyError> {
        self.socket
            .send_to_addr(message.as_bytes(), &self.target)
            .map(drop)
            .map_err(|source| NotifyError::Send {
                address: self.address.clone(),
                message: message.to_string(),
                source,
            })
    }
}

/// The socket `$NOTIFY_SOCKET` names: `@name` is the abstract name `name`, anything else
/// must be an absolute path (sd_notify(3)).
fn socket_address(address: &str) -> Result<SocketAddr, NotifyError> {
    let invalid = |reason| NotifyError::Address {
        address: address.to_string(),
        reason,
    };
    if let Some(name) = address.strip_prefix('@') {
        SocketAddr::from_abstract_name(name.as_bytes())
            .map_err(|_| invalid("abstract socket name too long"))
    } else if address.starts_with('/') {
        SocketAddr::from_pathname(address).map_err(|_| invalid("socket path too long"))
    } else {
        Err(invalid(
            "neither an absolute path nor an @abstract name (vsock: addresses are not supported)",
        ))
    }
}

/// `$WATCHDOG_USEC` as a duration, unless `$WATCHDOG_PID` names another process (the
/// variables are inherited, and only the main process is watched).
fn watchdog_timeout(
    usec: Option<&str>,
    watched_pid: Option<&str>,
    pid: u32,
) -> Result<Option<Duration>, NotifyError> {
    let positive = |variable, value: &str| {
        value
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| NotifyError::Watchdog {
                variable,
                value: value.to_string(),
            })
    };
    let Some(usec) = usec.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    if let Some(watched) = watched_pid.filter(|p| !p.is_empty()) {
        if positive("WATCHDOG_PID", watched)? != u64::from(pid) {
            return Ok(None);
        }
    }
    Ok(Some(Duration::from_micros(positive(
        "WATCHDOG_USEC",
        usec,
    )?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A manager's socket: bound in a fresh directory, or under a fresh abstract name.
    struct Manager {
        socket: UnixDatagram,
        address: String,
        dir: Option<PathBuf>,
    }

    impl Manager {
        fn unique() -> String {
            static SEQ: AtomicU32 = AtomicU32::new(0);
            format!(
                "xlb-notify-test-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            )
        }

        fn at_path() -> Manager {
            let dir = std::env::temp_dir().join(Manager::unique());
            std::fs::create_dir_all(&dir).expect("scratch dir");
            let path = dir.join("notify");
            let socket = UnixDatagram::bind(&path).expect("bind the manager's socket");
            Manager {
                socket,
                address: path.to_str().expect("utf-8 path").to_string(),
                dir: Some(dir),
            }
        }

        fn abstract_name() -> Manager {
            let name = Manager::unique();
            let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("name fits");
            let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract socket");
            Manager {
                socket,
                address: format!("@{name}"),
                dir: None,
            }
        }

        fn notifier(&self) -> Notifier {
            Notifier::from_vars(Some(&self.address), None, None, 1)
                .expect("valid address")
                .expect("a notifier")
        }

        /// The next datagram, exactly as sent.
        fn receive(&self) -> String {
            self.socket
                .set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            let mut buf = [0u8; 4096];
            let n = self.socket.recv(&mut buf).expect("a notification arrives");
            String::from_utf8(buf[..n].to_vec()).expect("utf-8 notification")
        }
    }

    impl Drop for Manager {
        fn drop(&mut self) {
            if let Some(dir) = &self.dir {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    #[test]
    fn a_path_socket_gets_one_datagram_per_notification() {
        let manager = Manager::at_path();
        let notifier = manager.notifier();
        notifier.ready().expect("ready");
        notifier.reloading().expect("reloading");
        notifier.ready().expect("ready after reload");
        notifier.watchdog().expect("watchdog");
        notifier.stopping().expect("stopping");
        for expected in [
            "READY=1",
            "RELOADING=1",
            "READY=1",
            "WATCHDOG=1",
            "STOPPING=1",
        ] {
            assert_eq!(manager.receive(), expected);
        }
    }

    #[test]
    fn an_at_sign_names_an_abstract_socket() {
        let manager = Manager::abstract_name();
        manager.notifier().ready().expect("ready");
        assert_eq!(manager.receive(), "READY=1");
    }

    #[test]
    fn status_is_one_line() {
        let manager = Manager::at_path();
        manager
            .notifier()
            .status("reload refused:\nbad.yaml:3:1: unknown field\r")
            .expect("status");
        assert_eq!(
            manager.receive(),
            "STATUS=reload refused: bad.yaml:3:1: unknown field "
        );
    }

    #[test]
    fn no_socket_variable_means_not_under_systemd() {
        for unset in [None, Some("")] {
            let notifier = Notifier::from_vars(unset, Some("30000000"), None, 1).expect("ok");
            assert!(notifier.is_none());
        }
    }

    #[test]
    fn relative_and_vsock_addresses_are_refused_by_name() {
        for address in ["run/notify", "vsock:2:1234"] {
            let err = Notifier::from_vars(Some(address), None, None, 1).expect_err(address);
            assert!(err.to_string().contains(address), "{err}");
        }
    }

    #[test]
    fn a_vanished_manager_is_a_send_error_naming_the_socket() {
        let manager = Manager::at_path();
        let notifier = manager.notifier();
        let address = manager.address.clone();
        drop(manager);
        let err = notifier.ready().expect_err("nobody listens");
        assert!(
            matches!(&err, NotifyError::Send { message, .. } if message == "READY=1"),
            "{err:?}"
        );
        assert!(err.to_string().contains(&address), "{err}");
    }

    #[test]
    fn the_watchdog_is_for_the_named_process_only() {
        let interval = |usec, pid: Option<&str>| {
            Notifier::from_vars(Some("/run/systemd/notify"), usec, pid, 4242)
                .expect("valid")
                .expect("a notifier")
                .watchdog_interval()
        };
        assert_eq!(
            interval(Some("30000000"), None),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            interval(Some("1500000"), Some("4242")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(interval(Some("30000000"), Some("17")), None);
        assert_eq!(interval(None, Some("4242")), None);
        assert_eq!(interval(Some(""), None), None);
    }

    #[test]
    fn a_malformed_watchdog_variable_is_an_error() {
        for (usec, pid, variable) in [
            ("soon", None, "WATCHDOG_USEC"),
            ("0", None, "WATCHDOG_USEC"),
            ("30000000", Some("me"), "WATCHDOG_PID"),
        ] {
            let err = Notifier::from_vars(Some("/run/systemd/notify"), Some(usec), pid, 1)
                .expect_err(usec);
            assert!(
                matches!(&err, NotifyError::Watchdog { variable: v, .. } if *v == variable),
                "{err:?}"
            );
        }
    }
}
