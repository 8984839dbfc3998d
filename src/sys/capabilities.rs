//! This thread's Linux capability sets, through capget(2) and capset(2) (the 64-bit
//! version 3 interface of linux/capability.h). Capabilities belong to threads, not
//! processes: a thread can only change its own, and a thread started later copies its
//! creator's. So each running thread drops its own, and the threads started after a drop
//! inherit the smaller sets.

use std::io;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct Header {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`: one 32-bit word of each set.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// One thread's effective, permitted and inheritable sets, one bit per capability
/// (`1 << CAP_NET_RAW`, ...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapabilitySets {
    /// What the kernel checks now.
    pub effective: u64,
    /// What the thread may raise into effective; once dropped, gone for good.
    pub permitted: u64,
    /// What survives an execve (xlb executes nothing).
    pub inheritable: u64,
}

fn header() -> Header {
    // pid 0: the calling thread.
    Header {
        version: VERSION_3,
        pid: 0,
    }
}

fn join(words: [Data; 2], set: impl Fn(&Data) -> u32) -> u64 {
    u64::from(set(&words[0])) | u64::from(set(&words[1])) << 32
}

/// The calling thread's sets.
pub fn current() -> io::Result<CapabilitySets> {
    let mut header = header();
    let mut words = [Data::default(); 2];
    // SAFETY: `header` and both `Data` words are live, writable and laid out as the
    // kernel's version 3 structures, which is what the header's version tells it.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, words.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(CapabilitySets {
        effective: join(words, |d| d.effective),
        permitted: join(words, |d| d.permitted),
        inheritable: join(words, |d| d.inheritable),
    })
}

/// Sets the calling thread's sets. The kernel allows only shrinking permitted, an
/// effective set within the new permitted one, and (without CAP_SETPCAP) an inheritable
/// set within the old inheritable and permitted ones; dropping a capability from
/// permitted also drops it from the ambient set.
pub fn set(sets: CapabilitySets) -> io::Result<()> {
    let mut header = header();
    let word = |shift: u32| Data {
        effective: (sets.effective >> shift) as u32,
        permitted: (sets.permitted >> shift) as u32,
        inheritable: (sets.inheritable >> shift) as u32,
    };
    let words = [word(0), word(32)];
    // SAFETY: `header` and both `Data` words are live and laid out as the kernel's
    // version 3 structures; capset only reads the data.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, words.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Keeps only the capabilities in `keep` in the calling thread's effective, permitted
/// and inheritable sets, for good.
pub fn restrict(keep: u64) -> io::Result<()> {
    let now = current()?;
    set(CapabilitySets {
        effective: now.effective & keep,
        permitted: now.permitted & keep,
        inheritable: now.inheritable & keep,
    })
}

/// Whether this thread, with the effective set it has now, may use the bpf(2) syscall
/// on BPF objects it already holds. Since Linux 5.19 `kernel.unprivileged_bpf_disabled`
/// only guards creating maps and loading programs; before, it refused every bpf(2) call
/// without CAP_BPF (or CAP_SYS_ADMIN). Asked of the kernel itself: a map lookup on an
/// invalid descriptor fails with EBADF where the call is open, EPERM where it is not.
pub fn bpf_usable() -> bool {
    /// `BPF_MAP_LOOKUP_ELEM`.
    const MAP_LOOKUP_ELEM: libc::c_long = 1;
    /// The map-element layout of `union bpf_attr`: map_fd, pad, key, value, flags.
    #[repr(C)]
    struct MapElem {
        map_fd: u32,
        pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    let attr = MapElem {
        map_fd: u32::MAX,
        pad: 0,
        key: 0,
        value: 0,
        flags: 0,
    };
    // SAFETY: `attr` is live for the call and its size is passed; the kernel reads it
    // and, the descriptor being invalid, writes nothing.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            MAP_LOOKUP_ELEM,
            &attr as *const MapElem,
            std::mem::size_of::<MapElem>(),
        )
    };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_drops_its_own_capabilities_and_threads_it_starts_inherit_that() {
        let outer = current().expect("capget");
        // In a thread of its own, so the test harness's other threads keep theirs.
        std::thread::spawn(|| {
            let before = current().expect("capget");
            let net_raw = 1u64 << 13;
            restrict(net_raw).expect("capset may always shrink");
            let after = current().expect("capget");
            assert_eq!(after.effective, before.effective & net_raw);
            assert_eq!(after.permitted, before.permitted & net_raw);
            assert_eq!(after.inheritable, before.inheritable & net_raw);
            let child = std::thread::spawn(current).join().unwrap().expect("capget");
            assert_eq!(child, after, "a new thread copies its creator's sets");
            // Dropped from permitted is gone: raising it again is refused.
            if before.permitted & (1 << 12) != 0 {
                let raised = CapabilitySets {
                    effective: after.effective | 1 << 12,
                    ..after
                };
                assert!(set(raised).is_err(), "CAP_NET_ADMIN came back");
            }
        })
        .join()
        .expect("the dropping thread");
        assert_eq!(
            current().expect("capget"),
            outer,
            "other threads keep theirs"
        );
    }
}
