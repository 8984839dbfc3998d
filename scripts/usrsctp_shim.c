/*
 * LD_PRELOAD shim for Debian's usrsctp example programs (tsctp, client, echo_server)
 * as tests/sctp_e2e.rs and the perf harness run them. It changes three things and
 * nothing else:
 *
 *  - stdout is line-buffered, so a test reading a program's output file sees each
 *    result line when it is printed, not when the process exits.
 *  - tsctp switches the stack's debug output on (SCTP_DEBUG_ALL), which the Debian
 *    build prints on stdout: tens of thousands of lines a second that bury the one
 *    result line and slow the transfer. The shim keeps debug output off.
 *  - After usrsctp_init, it sets the potentially-failed threshold to 0 (RFC 7829
 *    §5.1, PFMR = 0, what telecom SCTP stacks configure): one retransmission timeout
 *    on a path moves traffic to another confirmed path. usrsctp's default (PF off,
 *    Path.Max.Retrans 5) fails a path over only after ~60 s of doubling timeouts,
 *    far longer than a test should run.
 *
 * Built by the test with `cc -shared -fPIC`; it resolves the real functions with
 * dlsym(RTLD_NEXT), so it needs no usrsctp headers or import library.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef int (*conn_output_fn)(void *addr, void *buffer, size_t length, uint8_t tos,
                              uint8_t set_df);
typedef void (*debug_printf_fn)(const char *format, ...);

__attribute__((constructor)) static void line_buffered_stdout(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
}

int usrsctp_sysctl_set_sctp_debug_on(uint32_t value)
{
	(void)value;
	return 0;
}

void usrsctp_init(uint16_t port, conn_output_fn conn_output, debug_printf_fn debug_printf)
{
	void (*real_init)(uint16_t, conn_output_fn, debug_printf_fn) =
	    (void (*)(uint16_t, conn_output_fn, debug_printf_fn))dlsym(RTLD_NEXT, "usrsctp_init");
	int (*set_pf_threshold)(uint32_t) =
	    (int (*)(uint32_t))dlsym(RTLD_NEXT, "usrsctp_sysctl_set_sctp_path_pf_threshold");

	if (real_init == NULL || set_pf_threshold == NULL) {
		fprintf(stderr, "usrsctp_shim: libusrsctp symbols not found: %s\n", dlerror());
		exit(70);
	}
	real_init(port, conn_output, debug_printf);
	if (set_pf_threshold(0) != 0) {
		fprintf(stderr, "usrsctp_shim: could not set the potentially-failed threshold\n");
		exit(70);
	}
}
