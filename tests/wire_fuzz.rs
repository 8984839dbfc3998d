//! Fuzz the wire layer with proptest: arbitrary bytes and mutated valid frames never panic
//! the header parse, the ICMP error quote, the VIP replies or the encapsulations, and what
//! they return stays inside the buffer.

#[allow(dead_code)]
#[path = "../src/wire/fixtures.rs"]
mod fixtures;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use xlb::wire::{encap, headers, reply};

const SEEDS: [&[u8]; 13] = [
    &fixtures::TCP4_VLAN,
    &fixtures::UDP4_OPTIONS,
    &fixtures::UDP6_EXT,
    &fixtures::UDP6_FRAG_FIRST,
    &fixtures::UDP6_FRAG_LATER,
    &fixtures::TCP4_FRAG_LATER,
    &fixtures::SCTP4,
    &fixtures::ARP_REQUEST,
    &fixtures::ICMP4_ECHO,
    &fixtures::ICMP6_ECHO,
    &fixtures::NDP_NS,
    &fixtures::ICMP4_FRAG_NEEDED,
    &fixtures::ICMP6_PTB,
];

const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// A seed frame with a few bytes overwritten, cut short or padded: close enough to valid
/// that the parse gets deep into it.
fn mutated_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        0..SEEDS.len(),
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        any::<usize>(),
        0usize..24,
    )
        .prop_map(|(seed, edits, cut, extra)| {
            let mut frame = SEEDS[seed].to_vec();
            for (at, value) in edits {
                let at = at % frame.len();
                frame[at] = value;
            }
            // Half the frames keep their full length so edits, not cuts, decide.
            if cut % 2 == 0 {
                frame.truncate((cut / 2) % (frame.len() + 1));
            }
            frame.resize(frame.len() + extra, 0);
            frame
        })
}

fn any_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        mutated_frame()
    ]
}

/// Run every frame-taking function on `frame` with `room` spare bytes behind it, checking
/// returned lengths and offsets stay inside the buffer.
fn exercise(frame: &[u8], room: usize) {
    let mut buffer = frame.to_vec();
    buffer.resize(frame.len() + room, 0);
    if let Ok(len) = reply::arp_reply(&mut buffer.clone(), OUR_MAC) {
        assert!(len <= buffer.len());
    }
    let Ok(parsed) = headers::parse(frame) else {
        return;
    };
    assert!(usize::from(parsed.l3_offset) <= frame.len());
    assert!(usize::from(parsed.l4_offset) + usize::from(parsed.l4_len) <= frame.len());
    if parsed.fragment {
        assert_eq!((parsed.src_port, parsed.dst_port), (0, 0));
    }
    let _ = headers::parse_icmp_error(frame, &parsed);
    let _ = reply::arp_request_target(frame, &parsed);
    let _ = reply::ndp_solicit_target(frame, &parsed);

    let answers = [
        reply::icmpv4_echo_reply(&mut buffer.clone(), &parsed),
        reply::icmpv6_echo_reply(&mut buffer.clone(), &parsed),
        reply::ndp_advert(&mut buffer.clone(), &parsed, OUR_MAC),
    ];
    for len in answers.into_iter().flatten() {
        assert!(len <= buffer.len());
    }

    let l3 = usize::from(parsed.l3_offset);
    let (v4a, v4b) = (Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 11));
    let (v6a, v6b) = (
        Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1),
        Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x11),
    );
    let len = frame.len();
    let encapsulated = [
        encap::ipip(&mut buffer.clone(), len, l3, v4a, v4b, 64),
        encap::ip6ip(&mut buffer.clone(), len, l3, v6a, v6b, 64),
        encap::gue(
            &mut buffer.clone(),
            len,
            l3,
            v4a.into(),
            v4b.into(),
            1,
            2,
            64,
        ),
        encap::gue(
            &mut buffer.clone(),
            len,
            l3,
            v6a.into(),
            v6b.into(),
            1,
            2,
            64,
        ),
    ];
    for new_len in encapsulated.into_iter().flatten() {
        assert!(new_len <= buffer.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn wire_never_panics(frame in any_frame(), room in 0usize..80) {
        exercise(&frame, room);
    }

    /// Encapsulation with offsets and lengths that need not match the frame.
    #[test]
    fn encap_never_panics(
        frame in any_frame(),
        len in 0usize..300,
        l3 in 0usize..64,
        room in 0usize..80,
    ) {
        let mut buffer = frame;
        buffer.resize(buffer.len() + room, 0);
        let v4 = Ipv4Addr::new(198, 18, 1, 1);
        let v6 = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
        let results = [
            encap::ipip(&mut buffer.clone(), len, l3, v4, v4, 1),
            encap::ip6ip(&mut buffer.clone(), len, l3, v6, v6, 1),
            encap::gue(&mut buffer.clone(), len, l3, IpAddr::V4(v4), IpAddr::V6(v6), 1, 2, 3),
            encap::gue(&mut buffer.clone(), len, l3, IpAddr::V6(v6), IpAddr::V6(v6), 1, 2, 3),
        ];
        for new_len in results.into_iter().flatten() {
            prop_assert!(new_len <= buffer.len());
        }
    }

    /// Quotes and replies given headers that belong to another frame.
    #[test]
    fn foreign_headers_never_panic(seed in 0..SEEDS.len(), frame in any_frame()) {
        let parsed = headers::parse(SEEDS[seed]).unwrap();
        let _ = headers::parse_icmp_error(&frame, &parsed);
        let _ = reply::arp_request_target(&frame, &parsed);
        let _ = reply::ndp_solicit_target(&frame, &parsed);
        let _ = reply::icmpv4_echo_reply(&mut frame.clone(), &parsed);
        let _ = reply::icmpv6_echo_reply(&mut frame.clone(), &parsed);
        let _ = reply::ndp_advert(&mut frame.clone(), &parsed, OUR_MAC);
    }
}

/// Every seed parses: the mutations start from valid frames.
#[test]
fn seeds_parse() {
    for seed in SEEDS {
        assert!(headers::parse(seed).is_ok());
    }
}
