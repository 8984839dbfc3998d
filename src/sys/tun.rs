//! A TUN device that lives exactly as long as its file descriptor: the kernel deletes a
//! non-persistent TUN device when the last descriptor closes, including when the process
//! dies by SIGKILL. `control::announce` puts the VIPs it announces on one, so a crash
//! withdraws them with no clean-up code (docs/deployment.md).

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// `TUNSETIFF` from `<linux/if_tun.h>`: `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// `IFF_TUN`: layer-3 device, no Ethernet header.
const IFF_TUN: libc::c_short = 0x0001;
/// `IFF_NO_PI`: no packet-information prefix on reads and writes.
const IFF_NO_PI: libc::c_short = 0x1000;

/// `struct ifreq` as `TUNSETIFF` reads it: the name, then the flags, padded to the
/// union's 24 bytes.
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// An open, non-persistent TUN device; closing it (drop, exit or crash) deletes it.
#[derive(Debug)]
pub struct TunDevice {
    /// Holds the device alive; nothing is read or written through it.
    _file: File,
    name: String,
}

impl TunDevice {
    /// Creates TUN device `name` (1 to 15 bytes, no NUL). Fails if the name is taken by a
    /// device another descriptor holds (`EBUSY`) or the caller lacks `CAP_NET_ADMIN`.
    pub fn create(name: &str) -> io::Result<TunDevice> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not an interface name"),
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open("/dev/net/tun")?;
        let mut request = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TUN | IFF_NO_PI,
            _pad: [0; 22],
        };
        for (slot, byte) in request.name.iter_mut().zip(name.bytes()) {
            *slot = byte as libc::c_char;
        }
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`; `request` is one, laid
        // out as the kernel's (name[IFNAMSIZ], then the flags in a 24-byte union), NUL
        // terminated (the name is shorter than IFNAMSIZ), and lives across the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut request) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel wrote back a NUL-terminated name within the array.
        let actual = unsafe { CStr::from_ptr(request.name.as_ptr()) };
        Ok(TunDevice {
            _file: file,
            name: actual.to_string_lossy().into_owned(),
        })
    }

    /// The device's interface name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
