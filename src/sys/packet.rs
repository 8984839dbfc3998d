//! A send-only `AF_PACKET` socket bound to one interface: whole Ethernet frames out,
//! exactly as built. The health checks' `via: vip` probes use it to hand a backend the
//! frame the dataplane would (DSR's MAC rewrite, IPIP or GUE), which no IP socket can.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// An `AF_PACKET`/`SOCK_RAW` socket that sends on one interface and receives nothing
/// (protocol 0 binds no EtherType). Needs CAP_NET_RAW.
pub struct PacketSender {
    fd: OwnedFd,
}

impl PacketSender {
    /// Opens the socket and binds it to interface `ifindex`.
    pub fn bind(ifindex: u32) -> io::Result<PacketSender> {
        let ifindex = i32::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index"))?;
        // SAFETY: socket(2) takes no pointers; a negative result is checked below.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor socket(2) just returned to us and nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain old data; all zeroes is a valid value.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_ifindex = ifindex;
        // SAFETY: `address` is a live sockaddr_ll and the length passed is its size.
        let bound = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if bound < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSender { fd })
    }

    /// Sends one whole Ethernet frame.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: the pointer and length come from one live slice, read-only to the kernel.
        let sent =
            unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        match usize::try_from(sent) {
            Ok(n) if n == frame.len() => Ok(()),
            Ok(n) => Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {n} of {} bytes", frame.len()),
            )),
            Err(_) => Err(io::Error::last_os_error()),
        }
    }
}
