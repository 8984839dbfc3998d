//! Compiles the XDP steering program (`bpf/steer.c`) to BPF bytecode in OUT_DIR, where
//! `src/xsk/program.rs` embeds it with `include_bytes!`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "bpf/steer.c";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let object = out_dir.join("steer.o");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());

    let mut command = Command::new(&clang);
    command.args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"]);
    // <linux/bpf.h> pulls in <asm/types.h>, which Debian keeps under the multiarch dir.
    if let Some(multiarch) = multiarch_include_dir() {
        command.arg(format!("-I{multiarch}"));
    }
    command.arg("-c").arg(SOURCE).arg("-o").arg(&object);

    let status = match command.status() {
        Ok(status) => status,
        Err(err) => panic!(
            "\n\nxlb build: cannot run `{clang}` ({err}); the XDP steering program ({SOURCE}) \
             is compiled with clang -target bpf.\nInstall clang, llvm, libbpf-dev and \
             linux-libc-dev (scripts/setup.sh does it), or point CLANG at a clang binary.\n\n"
        ),
    };
    if !status.success() {
        panic!(
            "\n\nxlb build: `{clang} -target bpf` failed on {SOURCE} ({status}); see its \
             output above. Missing <bpf/bpf_helpers.h> means libbpf-dev is not installed.\n\n"
        );
    }
}

/// `/usr/include/<triple>` for the target, when it exists.
fn multiarch_include_dir() -> Option<String> {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").ok()?;
    let triple = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        _ => return None,
    };
    let dir = format!("/usr/include/{triple}");
    PathBuf::from(&dir).is_dir().then_some(dir)
}
