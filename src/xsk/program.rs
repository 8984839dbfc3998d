//! The XDP steering program (`bpf/steer.c`, compiled by build.rs): loading it with
//! libbpf, attaching it to one interface through a bpf_link, and its two maps, `vips`
//! (which destinations xlb takes) and `xsks` (the AF_XDP socket of each rx queue).

use std::collections::HashSet;
use std::ffi::CStr;
use std::io;
use std::net::IpAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use libxdp_sys as bpf;

use super::error::{is_permission_error, XskError};
use super::sys::interface_index;
use crate::config::XdpMode;

/// The BPF object's bytes, 8-byte aligned so libelf can read its headers in place.
#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

static STEER_OBJECT: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/steer.o")));

const PROGRAM_NAME: &CStr = c"xlb_steer";
const XSKS_MAP: &CStr = c"xsks";
const VIPS_MAP: &CStr = c"vips";
/// `max_entries` of the `xsks` map in bpf/steer.c.
const XSKS_CAPACITY: u32 = 256;

/// XDP_FLAGS_SKB_MODE and XDP_FLAGS_DRV_MODE from <linux/if_link.h>.
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// The mode the program actually runs in, for the log and the tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    /// In the driver, before an skb is allocated.
    Native,
    /// In the generic path, after the skb is allocated.
    Skb,
}

/// Key of the `vips` map; the same 20 bytes as `struct vip_key` in bpf/steer.c.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
struct VipKey {
    family: u8,
    pad: [u8; 3],
    addr: [u8; 16],
}

impl VipKey {
    fn new(addr: IpAddr) -> Self {
        let mut key = VipKey {
            family: 0,
            pad: [0; 3],
            addr: [0; 16],
        };
        match addr {
            IpAddr::V4(v4) => {
                key.family = 4;
                key.addr[..4].copy_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                key.family = 6;
                key.addr = v6.octets();
            }
        }
        key
    }
}

/// xlb's XDP program attached to one interface: steers VIP traffic (and ARP/NDP for
/// VIPs) to the AF_XDP socket of the receiving queue, passes the rest to the kernel.
/// The attachment is a bpf_link owned by this process, so it goes away on Drop and
/// also when the process dies, however it dies.
pub struct SteeringProgram {
    ifname: String,
    /// Closing it detaches the program. Fields drop in order: the link goes first,
    /// then the object holding the program and maps.
    _link: OwnedFd,
    _object: LoadedObject,
    xsks_fd: RawFd,
    vips_fd: RawFd,
    mode: AttachedMode,
    vips: HashSet<VipKey>,
}

impl SteeringProgram {
    /// Loads the program and attaches it to `ifname` in `mode` (auto: native, then skb).
    pub fn attach(ifname: &str, mode: XdpMode) -> Result<Self, XskError> {
        let ifindex = interface_index(ifname).ok_or_else(|| XskError::InterfaceMissing {
            ifname: ifname.to_string(),
        })?;
        // Dropping `object` on any early return closes it.
        let object = load_object(ifname)?;
        let prog_fd = program_fd(&object, ifname)?;
        let xsks_fd = map_fd(&object, XSKS_MAP, ifname)?;
        let vips_fd = map_fd(&object, VIPS_MAP, ifname)?;

        let not_tried = || "not tried".to_string();
        let (native, skb) = match mode {
            XdpMode::Native => (Some(XDP_FLAGS_DRV_MODE), None),
            XdpMode::Skb => (None, Some(XDP_FLAGS_SKB_MODE)),
            XdpMode::Auto => (Some(XDP_FLAGS_DRV_MODE), Some(XDP_FLAGS_SKB_MODE)),
        };
        let mut native_error = not_tried();
        let mut attached = None;
        if let Some(flags) = native {
            match link_xdp(prog_fd, ifindex, flags) {
                Ok(link) => attached = Some((link, AttachedMode::Native)),
                Err(err) if is_permission_error(&err) => {
                    return Err(XskError::PermissionDenied {
                        ifname: ifname.to_string(),
                        operation: "attaching the XDP steering program",
                        source: err,
                    })
                }
                Err(err) => native_error = err.to_string(),
            }
        }
        let mut skb_error = not_tried();
        if attached.is_none() {
            if let Some(flags) = skb {
                match link_xdp(prog_fd, ifindex, flags) {
                    Ok(link) => attached = Some((link, AttachedMode::Skb)),
                    Err(err) => skb_error = err.to_string(),
                }
            }
        }
        let Some((link, mode)) = attached else {
            return Err(XskError::AttachFailed {
                ifname: ifname.to_string(),
                native: native_error,
                skb: skb_error,
            });
        };
        tracing::info!(interface = ifname, mode = ?mode, "XDP steering program attached");
        Ok(SteeringProgram {
            ifname: ifname.to_string(),
            _link: link,
            _object: object,
            xsks_fd,
            vips_fd,
            mode,
            vips: HashSet::new(),
        })
    }

    /// The mode the program was attached in.
    pub fn attached_mode(&self) -> AttachedMode {
        self.mode
    }

    /// The interface the program is attached to.
    pub fn interface(&self) -> &str {
        &self.ifname
    }

    /// Makes `addrs` the steered set: adds the new addresses first, then removes the
    /// stale ones, so an address present before and after is never missed in between.
    pub fn set_vips(&mut self, addrs: &[IpAddr]) -> Result<(), XskError> {
        let wanted: HashSet<VipKey> = addrs.iter().map(|addr| VipKey::new(*addr)).collect();
        let present: u8 = 1;
        let added: Vec<VipKey> = wanted.difference(&self.vips).copied().collect();
        for key in &added {
            // SAFETY: key and value point to live values of the map's key (20 bytes)
            // and value (1 byte) sizes; `vips_fd` is the map's fd, owned by `object`.
            let rc = unsafe {
                bpf::bpf_map_update_elem(
                    self.vips_fd,
                    (key as *const VipKey).cast(),
                    (&present as *const u8).cast(),
                    u64::from(bpf::BPF_ANY),
                )
            };
            self.check(rc, "vips")?;
            self.vips.insert(*key);
        }
        let stale: Vec<VipKey> = self.vips.difference(&wanted).copied().collect();
        for key in stale {
            // SAFETY: key points to a live value of the map's key size.
            let rc =
                unsafe { bpf::bpf_map_delete_elem(self.vips_fd, (&key as *const VipKey).cast()) };
            if rc < 0 && -rc != libc::ENOENT {
                self.check(rc, "vips")?;
            }
            self.vips.remove(&key);
        }
        Ok(())
    }

    /// Steers frames received on rx queue `queue` to the AF_XDP socket `fd`.
    pub fn register_socket(&mut self, queue: u32, fd: RawFd) -> Result<(), XskError> {
        if queue >= XSKS_CAPACITY {
            return Err(XskError::InvalidSetting {
                ifname: self.ifname.clone(),
                queue,
                reason: format!("the steering program serves queues below {XSKS_CAPACITY}"),
            });
        }
        let value: u32 = fd as u32;
        // SAFETY: key and value point to live u32s, the XSKMAP's key and value sizes.
        let rc = unsafe {
            bpf::bpf_map_update_elem(
                self.xsks_fd,
                (&queue as *const u32).cast(),
                (&value as *const u32).cast(),
                u64::from(bpf::BPF_ANY),
            )
        };
        self.check(rc, "xsks")
    }

    fn check(&self, rc: i32, map: &'static str) -> Result<(), XskError> {
        if rc >= 0 {
            return Ok(());
        }
        Err(XskError::MapUpdate {
            ifname: self.ifname.clone(),
            map,
            source: io::Error::from_raw_os_error(-rc),
        })
    }
}

impl Drop for SteeringProgram {
    fn drop(&mut self) {
        // The fields drop after this: `_link` (detaching the program), then `_object`.
        tracing::info!(interface = %self.ifname, "XDP steering program detached");
    }
}

/// A libbpf object (program and maps), closed on drop.
struct LoadedObject(NonNull<bpf::bpf_object>);

// SAFETY: the bpf_object is only used through its owner (`&mut SteeringProgram` or
// drop), never from two threads at once, and libbpf keeps no thread-local state for it.
unsafe impl Send for LoadedObject {}

impl Drop for LoadedObject {
    fn drop(&mut self) {
        // SAFETY: the pointer came from bpf_object__open_mem and is closed only here.
        unsafe { bpf::bpf_object__close(self.0.as_ptr()) };
    }
}

fn load_object(ifname: &str) -> Result<LoadedObject, XskError> {
    let bytes = &STEER_OBJECT.0;
    // SAFETY: the buffer is valid for `len` bytes for the whole call (libbpf copies it).
    let raw =
        unsafe { bpf::bpf_object__open_mem(bytes.as_ptr().cast(), bytes.len(), std::ptr::null()) };
    let object = NonNull::new(raw)
        .map(LoadedObject)
        .ok_or_else(|| XskError::ProgramLoad {
            ifname: ifname.to_string(),
            source: io::Error::last_os_error(),
        })?;
    // SAFETY: `object` is a valid, not yet loaded bpf_object.
    let rc = unsafe { bpf::bpf_object__load(object.0.as_ptr()) };
    if rc < 0 {
        let err = io::Error::from_raw_os_error(-rc);
        if is_permission_error(&err) {
            return Err(XskError::PermissionDenied {
                ifname: ifname.to_string(),
                operation: "loading the XDP steering program",
                source: err,
            });
        }
        return Err(XskError::ProgramLoad {
            ifname: ifname.to_string(),
            source: err,
        });
    }
    Ok(object)
}

fn program_fd(object: &LoadedObject, ifname: &str) -> Result<RawFd, XskError> {
    // SAFETY: `object` is loaded; the name is NUL-terminated.
    let prog =
        unsafe { bpf::bpf_object__find_program_by_name(object.0.as_ptr(), PROGRAM_NAME.as_ptr()) };
    // SAFETY: bpf_program__fd accepts the pointer find_program returned (checked non-null).
    let fd = if prog.is_null() {
        -1
    } else {
        unsafe { bpf::bpf_program__fd(prog) }
    };
    if fd < 0 {
        return Err(XskError::ProgramLoad {
            ifname: ifname.to_string(),
            source: io::Error::new(io::ErrorKind::NotFound, "program xlb_steer missing"),
        });
    }
    Ok(fd)
}

fn map_fd(object: &LoadedObject, name: &'static CStr, ifname: &str) -> Result<RawFd, XskError> {
    // SAFETY: `object` is loaded; the name is NUL-terminated.
    let map = unsafe { bpf::bpf_object__find_map_by_name(object.0.as_ptr(), name.as_ptr()) };
    // SAFETY: bpf_map__fd accepts the pointer find_map returned (checked non-null).
    let fd = if map.is_null() {
        -1
    } else {
        unsafe { bpf::bpf_map__fd(map) }
    };
    if fd < 0 {
        return Err(XskError::ProgramLoad {
            ifname: ifname.to_string(),
            source: io::Error::new(io::ErrorKind::NotFound, format!("map {name:?} missing")),
        });
    }
    Ok(fd)
}

/// Attaches program `prog_fd` to `ifindex` through a new bpf_link with XDP `flags`.
fn link_xdp(prog_fd: RawFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    // SAFETY: an all-zero bpf_link_create_opts is its documented empty value.
    let mut opts: bpf::bpf_link_create_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<bpf::bpf_link_create_opts>();
    opts.flags = flags;
    // SAFETY: `opts` is initialised and outlives the call; the fds are valid.
    let fd = unsafe {
        bpf::bpf_link_create(prog_fd, ifindex as i32, bpf::bpf_attach_type_BPF_XDP, &opts)
    };
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: `fd` is a new link fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn bytes(key: &VipKey) -> Vec<u8> {
        let mut out = vec![key.family];
        out.extend_from_slice(&key.pad);
        out.extend_from_slice(&key.addr);
        out
    }

    #[test]
    fn vip_keys_match_the_bpf_struct_layout() {
        assert_eq!(std::mem::size_of::<VipKey>(), 20);
        let v4 = VipKey::new(IpAddr::V4(Ipv4Addr::new(198, 18, 100, 10)));
        let mut expected = vec![4, 0, 0, 0, 198, 18, 100, 10];
        expected.resize(20, 0);
        assert_eq!(bytes(&v4), expected);
        let addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x10);
        let v6 = VipKey::new(IpAddr::V6(addr));
        let mut expected = vec![6, 0, 0, 0];
        expected.extend_from_slice(&addr.octets());
        assert_eq!(bytes(&v6), expected);
    }
}
