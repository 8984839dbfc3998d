// SPDX-License-Identifier: Apache-2.0
//
// A backend's decapsulator for the lab, whose kernel has no ipip or ip6_tunnel module:
// strips the outer IPv4 header of IPv4-in-IPv4 packets (RFC 2003) and the outer IPv6
// header of IPv6-in-IPv6 ones (RFC 2473), and passes the inner packet to the kernel, as
// the tunnel device of a real backend would. Loaded with
// `ip link set dev eth0 xdpgeneric obj decap.o sec xdp`.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define NEXT_IPV4 4
#define NEXT_IPV6 41

/* Bytes of outer header to strip: same-family tunnels only, so the EtherType stays. */
static __always_inline int outer_len(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	struct iphdr *ip4 = data + sizeof(*eth);
	struct ipv6hdr *ip6 = data + sizeof(*eth);

	if ((void *)(eth + 1) > data_end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		if ((void *)(ip4 + 1) > data_end)
			return 0;
		return ip4->protocol == NEXT_IPV4 && ip4->ihl == 5 ? sizeof(*ip4) : 0;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		if ((void *)(ip6 + 1) > data_end)
			return 0;
		return ip6->nexthdr == NEXT_IPV6 ? sizeof(*ip6) : 0;
	}
	return 0;
}

SEC("xdp")
int decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	int strip = outer_len(data, data_end);
	struct ethhdr *eth = data;

	if (!strip)
		return XDP_PASS;
	// The Ethernet header moves forward over the outer IP header.
	struct ethhdr saved = *eth;
	if (bpf_xdp_adjust_head(ctx, strip))
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	*eth = saved;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
