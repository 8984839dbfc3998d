// SPDX-License-Identifier: GPL-2.0
/* The perf harness's in-kernel forwarder (case `xdp-fwd`): the limit of the veth topology,
 * against which xlb's forwarding is compared. On d0 it takes every IPv4 frame, rewrites the
 * Ethernet addresses the way xlb l4lb dsr does towards a backend (source: d1's MAC,
 * destination: the sink's, the backends' neighbour entry) and redirects it out of d1 in the
 * driver (XDP_REDIRECT); anything else (ARP) goes to the kernel.
 *
 * The harness compiles it per run with the addresses and d1's ifindex as macros:
 *   clang -target bpf -O2 -DOUT_IFINDEX=N -DSRC_MAC=0x02,... -DDST_MAC=0x02,... -c xdp_fwd.c
 * and attaches it with `ip link set dev d0 xdpdrv obj xdp_fwd.o sec xdp`. bpf_redirect()
 * takes the ifindex directly, so no loader has to fill a devmap; since Linux 5.12 it goes
 * through the same per-device bulk queue as a devmap redirect (dev_xdp_enqueue), flushed
 * once per NAPI poll. veth accepts redirected frames only when its peer (s0) runs XDP or
 * has NAPI on: the sink's XDP program (perf/xdp_sink.c) runs there.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef OUT_IFINDEX
#error "OUT_IFINDEX (d1's ifindex) must be defined"
#endif
#ifndef SRC_MAC
#error "SRC_MAC (d1's MAC as six comma-separated bytes) must be defined"
#endif
#ifndef DST_MAC
#error "DST_MAC (the sink's MAC as six comma-separated bytes) must be defined"
#endif

static const unsigned char src_mac[ETH_ALEN] = {SRC_MAC};
static const unsigned char dst_mac[ETH_ALEN] = {DST_MAC};

SEC("xdp")
int xdp_fwd(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	__builtin_memcpy(eth->h_dest, dst_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, src_mac, ETH_ALEN);
	return bpf_redirect(OUT_IFINDEX, 0);
}

char _license[] SEC("license") = "GPL";
