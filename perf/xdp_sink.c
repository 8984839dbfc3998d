// SPDX-License-Identifier: GPL-2.0
/* The zero-loss search's sink (perf/harness.py --zero-loss): on s0 it drops every UDP frame
 * in the driver and passes anything else (ARP, neighbour discovery) to the kernel. veth
 * counts each drop per receive queue (`ethtool -S s0`: rx_queue_N_xdp_drops), and those
 * counters are the arrivals.
 *
 * Counting in XDP costs the sink's core a few hundred cycles per frame and keeps no queue
 * that a preempted process could let overflow: an AF_XDP receiver on the generator's core
 * lost frames whenever the paced generator held that core for a scheduler slice, which
 * made the sink, not the device under test, set the zero-loss rate.
 *
 * Built and attached by the harness: clang -target bpf -O2 -c xdp_sink.c, then
 * `ip link set dev s0 xdpdrv obj xdp_sink.o sec xdp`.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("xdp")
int xdp_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) <= data_end && ip->protocol == IPPROTO_UDP)
			return XDP_DROP;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) <= data_end && ip6->nexthdr == IPPROTO_UDP)
			return XDP_DROP;
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
