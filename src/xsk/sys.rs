//! The few raw syscalls the AF_XDP layer makes itself: interface lookup, the rx queue
//! count (ethtool), the bound socket's options, poll, and entering a network namespace.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The interface's index in the calling thread's network namespace, or `None` when no
/// interface has that name.
pub(crate) fn interface_index(ifname: &str) -> Option<u32> {
    let name = CString::new(ifname).ok()?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// `struct ethtool_channels` from <linux/ethtool.h>.
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// `struct ifreq` with the `ifr_data` member, padded to the kernel's 40 bytes.
#[repr(C)]
struct IfreqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// The number of queues an AF_XDP socket can bind on (rx + combined channels), or
/// `None` when the driver does not report channels.
pub(crate) fn rx_queue_count(ifname: &str) -> Option<u32> {
    let bytes = ifname.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return None;
    }
    let mut channels = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..EthtoolChannels::default()
    };
    let mut request = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data: (&mut channels as *mut EthtoolChannels).cast(),
        _pad: [0; 16],
    };
    request.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: SIOCETHTOOL reads `request` (a correctly laid out ifreq) and writes the
    // `ethtool_channels` its data pointer refers to; both live until the call returns.
    let rc = unsafe {
        libc::ioctl(
            socket.as_raw_fd(),
            libc::SIOCETHTOOL,
            &mut request as *mut IfreqData,
        )
    };
    if rc < 0 {
        return None;
    }
    Some(channels.rx_count.max(channels.combined_count))
}

/// `struct ifreq` with the `ifr_hwaddr` member, padded to the kernel's 40 bytes.
#[repr(C)]
struct IfreqHwaddr {
    name: [u8; libc::IFNAMSIZ],
    hwaddr: libc::sockaddr,
    _pad: [u8; 8],
}

/// The Ethernet MAC of interface `ifname` in the calling thread's network namespace
/// (SIOCGIFHWADDR): the source MAC of the frames a port sends.
pub fn interface_mac(ifname: &str) -> io::Result<[u8; 6]> {
    let bytes = ifname.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "interface name {ifname} is longer than {} bytes",
                libc::IFNAMSIZ - 1
            ),
        ));
    }
    let mut request = IfreqHwaddr {
        name: [0; libc::IFNAMSIZ],
        hwaddr: libc::sockaddr {
            sa_family: 0,
            sa_data: [0; 14],
        },
        _pad: [0; 8],
    };
    request.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: SIOCGIFHWADDR reads the name and writes `hwaddr` of `request`, a correctly
    // laid out ifreq that lives until the call returns.
    let rc = unsafe {
        libc::ioctl(
            socket.as_raw_fd(),
            libc::SIOCGIFHWADDR,
            &mut request as *mut IfreqHwaddr,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if request.hwaddr.sa_family != libc::ARPHRD_ETHER {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{ifname} is not an Ethernet interface"),
        ));
    }
    let mut mac = [0u8; 6];
    for (byte, value) in mac.iter_mut().zip(request.hwaddr.sa_data) {
        *byte = value as u8;
    }
    Ok(mac)
}

/// Whether the bound AF_XDP socket `fd` runs in zero-copy mode (XDP_OPTIONS).
pub(crate) fn socket_is_zero_copy(fd: RawFd) -> io::Result<bool> {
    let mut options = libc::xdp_options { flags: 0 };
    let mut len = std::mem::size_of::<libc::xdp_options>() as libc::socklen_t;
    // SAFETY: `options` and `len` are valid for writes of the sizes passed.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libc::XDP_OPTIONS,
            (&mut options as *mut libc::xdp_options).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(options.flags & libc::XDP_OPTIONS_ZEROCOPY != 0)
}

/// Frames the kernel sends per TX kick in copy mode (`TX_BATCH_SIZE` in net/xdp/xsk.c):
/// past it the kick answers EAGAIN with frames still on the ring.
const COPY_MODE_FRAMES_PER_KICK: u32 = 32;

/// Kicks the kernel to transmit the TX ring of socket `fd`, again while it answers
/// EAGAIN, for at most the kicks `pending` frames need. One kick sends only 32 frames
/// in copy mode, so a single kick per batch left the rest waiting a whole batch and
/// capped forwarding near half of what the kernel can do (DPDK's AF_XDP driver loops
/// the same way). Other errors (ENOBUFS, EBUSY, ENETDOWN) leave the frames for the next
/// batch; frames that never complete show in the counters.
pub(crate) fn kick_tx(fd: RawFd, pending: u32) {
    for _ in 0..pending.div_ceil(COPY_MODE_FRAMES_PER_KICK).max(1) {
        // SAFETY: a zero-length sendto with no buffer and no address only asks the
        // kernel to process the socket's TX ring; `fd` is a live AF_XDP socket.
        let rc = unsafe {
            libc::sendto(
                fd,
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if rc >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN) {
            return;
        }
    }
}

/// Waits up to `timeout_ms` for any of `fds` to become readable.
pub(crate) fn poll_readable(fds: &mut [libc::pollfd], timeout_ms: i32) {
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd of the given length.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
}

/// Moves the calling thread into the network namespace `ip netns` calls `name`
/// (/run/netns/NAME), so that interfaces, AF_XDP sockets and XDP attachments made on
/// this thread afterwards are those of that namespace. Used by the namespace lab and
/// the end-to-end tests; other threads of the process are unaffected.
pub fn enter_network_namespace(name: &str) -> io::Result<()> {
    let file = File::open(format!("/run/netns/{name}"))?;
    // SAFETY: `file` is an open namespace file; setns(2) only reads the descriptor.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
