// SPDX-License-Identifier: Apache-2.0
//
// xlb's XDP steering program: redirects frames that xlb must see to the AF_XDP
// socket of the queue they arrived on, and passes everything else to the kernel.
//
// Steered: IPv4/IPv6 (after at most one 802.1Q tag) whose destination is in `vips`
// (service VIPs and xlb's SNAT addresses), ARP requests whose target IP is in `vips`,
// and ICMPv6 Neighbor Solicitations whose target is in `vips`. It never rewrites a
// frame and never drops one: when no socket serves the queue, the frame passes.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define FAMILY_IPV4 4
#define FAMILY_IPV6 6

#define ETH_P_8021Q_TAG 0x8100
#define ARP_OP_REQUEST 1
#define IPPROTO_ICMPV6_NEXT 58
#define ICMPV6_NEIGHBOR_SOLICITATION 135

// Key of the `vips` map; the Rust side (src/xsk/program.rs, VipKey) builds the same
// 20 bytes: family, three zero bytes, then the address (IPv4 in the first 4 bytes,
// the rest zero).
struct vip_key {
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct vip_key);
	__type(value, __u8);
} vips SEC(".maps");

struct vlan_tag {
	__be16 tci;
	__be16 inner_proto;
};

// RFC 826: the fixed part of an Ethernet/IPv4 ARP packet.
struct arp_ipv4 {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 oper;
	__u8 sha[6];
	__u8 spa[4];
	__u8 tha[6];
	__u8 tpa[4];
};

static __always_inline int is_vip(__u8 family, const __u8 *addr, int len)
{
	struct vip_key key = {};

	key.family = family;
	if (len == 4)
		__builtin_memcpy(key.addr, addr, 4);
	else
		__builtin_memcpy(key.addr, addr, 16);
	return bpf_map_lookup_elem(&vips, &key) != 0;
}

static __always_inline int steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3;
	__be16 proto;

	if ((void *)(eth + 1) > data_end)
		return 0;
	proto = eth->h_proto;
	l3 = eth + 1;
	// One 802.1Q tag, as the dataplane's parser reads (src/wire/headers.rs); 802.1ad
	// service tags and stacked tags are the kernel's.
	if (proto == bpf_htons(ETH_P_8021Q_TAG)) {
		struct vlan_tag *tag = l3;

		if ((void *)(tag + 1) > data_end)
			return 0;
		proto = tag->inner_proto;
		l3 = tag + 1;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		// RFC 791: destination address at octets 16..20 of the header.
		__u8 *hdr = l3;

		if ((void *)(hdr + 20) > data_end)
			return 0;
		return is_vip(FAMILY_IPV4, hdr + 16, 4);
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		// RFC 8200: next header at octet 6, destination at octets 24..40.
		__u8 *hdr = l3;

		if ((void *)(hdr + 40) > data_end)
			return 0;
		if (is_vip(FAMILY_IPV6, hdr + 24, 16))
			return 1;
		// RFC 4861 §4.3: an NS is ICMPv6 type 135 whose target address follows
		// type, code, checksum and 4 reserved octets.
		if (hdr[6] != IPPROTO_ICMPV6_NEXT)
			return 0;
		__u8 *icmp = hdr + 40;

		if ((void *)(icmp + 24) > data_end)
			return 0;
		if (icmp[0] != ICMPV6_NEIGHBOR_SOLICITATION)
			return 0;
		return is_vip(FAMILY_IPV6, icmp + 8, 16);
	}
	if (proto == bpf_htons(ETH_P_ARP)) {
		struct arp_ipv4 *arp = l3;

		if ((void *)(arp + 1) > data_end)
			return 0;
		if (arp->oper != bpf_htons(ARP_OP_REQUEST) || arp->ptype != bpf_htons(ETH_P_IP))
			return 0;
		return is_vip(FAMILY_IPV4, arp->tpa, 4);
	}
	return 0;
}

SEC("xdp")
int xlb_steer(struct xdp_md *ctx)
{
	if (!steer(ctx))
		return XDP_PASS;
	// No socket on this queue: the low bits of flags are the action taken instead.
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

char LICENSE[] SEC("license") = "Apache-2.0";
