//! The AF_XDP layer's error type: every variant names the interface (and queue, where
//! there is one) and says what to do about it.

use std::io;

/// Why attaching the steering program or opening AF_XDP sockets failed.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// The kernel refused for lack of privilege.
    #[error(
        "interface {ifname}: {operation} was refused ({source}): run xlb as root, or grant it \
         CAP_NET_ADMIN, CAP_BPF and CAP_NET_RAW"
    )]
    PermissionDenied {
        /// Interface the operation was for.
        ifname: String,
        /// What was being done, e.g. "loading the XDP steering program".
        operation: &'static str,
        /// The kernel's answer.
        source: io::Error,
    },
    /// No interface of that name exists in this network namespace.
    #[error(
        "interface {ifname} does not exist (in this network namespace): check \
         `dataplane.interfaces` and `ip link show`"
    )]
    InterfaceMissing {
        /// The name looked up.
        ifname: String,
    },
    /// The configured queue index is past the interface's queue count.
    #[error(
        "interface {ifname} queue {queue}: the interface has only {count} rx queue(s); use \
         queues below {count}, or raise the count with `ethtool -L {ifname}`"
    )]
    QueueOutOfRange {
        /// Interface.
        ifname: String,
        /// Queue asked for.
        queue: u32,
        /// Queues the interface has.
        count: u32,
    },
    /// `zero_copy: required` but the driver only offers copy mode.
    #[error(
        "interface {ifname} queue {queue}: zero-copy AF_XDP was required but the driver \
         refused it ({source}); set `zero_copy: auto` to accept copy mode"
    )]
    ZeroCopyRefused {
        /// Interface.
        ifname: String,
        /// Queue.
        queue: u32,
        /// The kernel's answer.
        source: io::Error,
    },
    /// Another AF_XDP socket still holds the queue after the retries.
    #[error(
        "interface {ifname} queue {queue}: another AF_XDP socket is bound to this queue \
         (EBUSY after retries); stop the other xlb or program using it"
    )]
    QueueBusy {
        /// Interface.
        ifname: String,
        /// Queue.
        queue: u32,
    },
    /// The XDP program could be attached neither natively nor in skb (generic) mode.
    #[error(
        "interface {ifname}: cannot attach the XDP steering program (native: {native}; skb: \
         {skb}); if another XDP program is attached, remove it with \
         `ip link set dev {ifname} xdp off`"
    )]
    AttachFailed {
        /// Interface.
        ifname: String,
        /// Why native (driver) mode failed, or "not tried".
        native: String,
        /// Why skb (generic) mode failed, or "not tried".
        skb: String,
    },
    /// The kernel rejected the embedded BPF object.
    #[error(
        "interface {ifname}: loading the XDP steering program failed ({source}); the \
         verifier log, if any, is printed above; a kernel older than 5.9 lacks bpf_link \
         for XDP"
    )]
    ProgramLoad {
        /// Interface the program was meant for.
        ifname: String,
        /// The error from libbpf.
        source: io::Error,
    },
    /// Updating one of the program's maps failed.
    #[error("interface {ifname}: updating BPF map `{map}` failed ({source})")]
    MapUpdate {
        /// Interface whose program owns the map.
        ifname: String,
        /// Map name in bpf/steer.c.
        map: &'static str,
        /// The kernel's answer.
        source: io::Error,
    },
    /// A parameter is out of what AF_XDP accepts.
    #[error("interface {ifname} queue {queue}: {reason}")]
    InvalidSetting {
        /// Interface.
        ifname: String,
        /// Queue.
        queue: u32,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// Creating the UMEM or the socket failed for another reason.
    #[error("interface {ifname} queue {queue}: {operation} failed ({source})")]
    Socket {
        /// Interface.
        ifname: String,
        /// Queue.
        queue: u32,
        /// What was being done.
        operation: &'static str,
        /// The underlying error.
        source: io::Error,
    },
}

/// True when the kernel answer means "not privileged enough".
pub(crate) fn is_permission_error(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}
