//! Scalars written as text in the service table (durations, MAC addresses, IP
//! addresses and prefixes, socket addresses), their parsers, the serde glue that
//! turns a parse failure into a message naming the value and the expected form,
//! and the JSON Schema fragments describing them.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use schemars::{json_schema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A value the service table writes as one YAML scalar and parses from its text.
pub(crate) trait TextValue: Sized {
    /// What a valid value looks like, appended to the error (`a MAC address (want ...)`).
    const EXPECTED: &'static str;
    /// Parses the scalar's text, or says why it is not a valid value.
    fn parse_text(text: &str) -> Result<Self, Cow<'static, str>>;
}

/// Parses `500ms`, `30s`, `5m`, `1h`: a whole number and a unit. A bare number is
/// refused, since `30` could mean seconds or milliseconds to different readers.
pub fn parse_duration(text: &str) -> Result<Duration, Cow<'static, str>> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err("a duration starts with a whole number".into());
    }
    let count: u64 = number
        .parse()
        .map_err(|_| Cow::Borrowed("the number is too large"))?;
    let unit_millis: u64 = match unit.trim_start() {
        "" => return Err("add a unit: ms, s, m or h (e.g. 30s)".into()),
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err("the unit must be ms, s, m or h".into()),
    };
    count
        .checked_mul(unit_millis)
        .map(Duration::from_millis)
        .ok_or(Cow::Borrowed("the duration is too large"))
}

/// Parses a MAC address written as six colon-separated hex octets (`02:00:5e:00:53:01`).
pub fn parse_mac(text: &str) -> Result<[u8; 6], Cow<'static, str>> {
    let mut mac = [0u8; 6];
    let mut octets = text.split(':');
    for slot in mac.iter_mut() {
        let octet = octets.next().ok_or("a MAC address has six octets")?;
        if octet.len() != 2 {
            return Err("each octet is two hex digits".into());
        }
        *slot = u8::from_str_radix(octet, 16).map_err(|_| "each octet is two hex digits")?;
    }
    if octets.next().is_some() {
        return Err("a MAC address has six octets".into());
    }
    Ok(mac)
}

/// Writes a MAC address the way the service table reads it.
pub fn format_mac(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// Newtype giving [`Duration`] its text form in the service table.
pub(crate) struct DurationText(pub(crate) Duration);
/// Newtype giving a MAC address its text form in the service table.
pub(crate) struct MacText(pub(crate) [u8; 6]);

impl TextValue for DurationText {
    const EXPECTED: &'static str = "a duration (want e.g. 500ms, 30s, 5m, 1h)";
    fn parse_text(text: &str) -> Result<Self, Cow<'static, str>> {
        parse_duration(text).map(DurationText)
    }
}

impl TextValue for MacText {
    const EXPECTED: &'static str = "a MAC address (want 02:00:5e:00:53:01)";
    fn parse_text(text: &str) -> Result<Self, Cow<'static, str>> {
        parse_mac(text).map(MacText)
    }
}

impl TextValue for IpAddr {
    const EXPECTED: &'static str = "an IP address (want 198.18.0.1 or 2001:db8::1)";
    fn parse_text(text: &str) -> Result<Self, Cow<'static, str>> {
        text.parse().map_err(|_| Cow::Borrowed(""))
    }
}

impl TextValue for Ipv4Addr {
    const EXPECTED: &'static str = "an IPv4 address (want 198.18.0.1)";
    fn parse_text(text: &str) -> Result<Self, Cow<'static, str>> {
        text.parse().map_err(|_| Cow::Borrowed(""))
    }
}

impl TextValue for Ipv6Addr {
    const EXPECTED: &'static str = "an IPv6 address (want 2001:db8::1)";
    fn parse_text(text: &str) -> Result<Self, Cow<'static, str>> {
        text.parse().map_err(|_| Cow::Borrowed(""))
    }
}

impl TextValue for IpNet {
    const EXPECTED: &'static str = "an address prefix (want 198.18.0.0/15 or 2001:db8::/32)";
    fn parse_text(text: &str) -> Result<Self, Cow<'static, str>> {
        let net: IpNet = text.parse().map_err(|_| Cow::Borrowed(""))?;
        if net.trunc() != net {
            return Err(format!("host bits are set; did you mean {}?", net.trunc()).into());
        }
        Ok(net)
    }
}

impl TextValue for SocketAddr {
    const EXPECTED: &'static str = "a socket address (want 127.0.0.1:9781 or [::1]:9781)";
    fn parse_text(text: &str) -> Result<Self, Cow<'static, str>> {
        text.parse().map_err(|_| Cow::Borrowed(""))
    }
}

/// Deserializes one scalar into a [`TextValue`]; a failure names the text and the
/// expected form, and serde_yaml_ng adds the field path and the scalar's position.
struct Text<T>(T);

impl<'de, T: TextValue> Deserialize<'de> for Text<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<T>(PhantomData<T>);
        impl<T: TextValue> TextVisitor<T> {
            fn parse<E: de::Error>(text: &str) -> Result<Text<T>, E> {
                T::parse_text(text).map(Text).map_err(|why| {
                    let why = if why.is_empty() {
                        String::new()
                    } else {
                        format!(": {why}")
                    };
                    E::custom(format_args!("{text:?} is not {}{why}", T::EXPECTED))
                })
            }
        }
        impl<T: TextValue> Visitor<'_> for TextVisitor<T> {
            type Value = Text<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(T::EXPECTED)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Self::parse(text)
            }
            fn visit_u64<E: de::Error>(self, number: u64) -> Result<Self::Value, E> {
                Self::parse(&number.to_string())
            }
            fn visit_i64<E: de::Error>(self, number: i64) -> Result<Self::Value, E> {
                Self::parse(&number.to_string())
            }
            fn visit_f64<E: de::Error>(self, number: f64) -> Result<Self::Value, E> {
                Self::parse(&number.to_string())
            }
        }
        deserializer.deserialize_any(TextVisitor(PhantomData))
    }
}

/// `deserialize_with` for one text scalar.
pub(crate) fn one<'de, D: Deserializer<'de>, T: TextValue>(d: D) -> Result<T, D::Error> {
    Text::<T>::deserialize(d).map(|Text(value)| value)
}

/// `deserialize_with` for an optional text scalar.
pub(crate) fn optional<'de, D: Deserializer<'de>, T: TextValue>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<Text<T>>::deserialize(d).map(|value| value.map(|Text(value)| value))
}

/// `deserialize_with` for a list of text scalars; a bad element is reported with its index.
pub(crate) fn list<'de, D: Deserializer<'de>, T: TextValue>(d: D) -> Result<Vec<T>, D::Error> {
    Vec::<Text<T>>::deserialize(d).map(|values| values.into_iter().map(|Text(v)| v).collect())
}

/// `deserialize_with` for a duration.
pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    one::<D, DurationText>(d).map(|DurationText(duration)| duration)
}

/// `deserialize_with` for an optional MAC address.
pub(crate) fn optional_mac<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 6]>, D::Error> {
    optional::<D, MacText>(d).map(|mac| mac.map(|MacText(mac)| mac))
}

/// JSON Schema of a duration string.
pub(crate) fn duration_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": "^[0-9]+(ms|s|m|h)$",
        "description": "A whole number and a unit: ms, s, m or h (e.g. 500ms, 30s)."
    })
}

/// JSON Schema of an optional MAC address string.
pub(crate) fn mac_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": ["string", "null"],
        "pattern": "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$",
        "description": "Six colon-separated hex octets, e.g. 02:00:5e:00:53:01."
    })
}

/// JSON Schema of a list of address prefixes.
pub(crate) fn prefix_list_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "type": "string", "description": "An address prefix, e.g. 198.18.0.0/15." }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_number_and_a_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_without_unit_or_number_are_refused() {
        assert!(parse_duration("30").unwrap_err().contains("add a unit"));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("10d").unwrap_err().contains("ms, s, m or h"));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("18446744073709551615h").is_err());
    }

    #[test]
    fn macs_are_six_hex_octets() {
        let mac = [0x02, 0x00, 0x5e, 0x00, 0x53, 0xab];
        assert_eq!(parse_mac("02:00:5e:00:53:ab"), Ok(mac));
        assert_eq!(parse_mac("02:00:5E:00:53:AB"), Ok(mac));
        assert_eq!(format_mac(&mac), "02:00:5e:00:53:ab");
        for bad in [
            "zz",
            "02:00:5e:00:53",
            "02:00:5e:00:53:01:02",
            "2:0:5e:0:53:1",
            "02-00-5e-00-53-01",
            "02:00:5e:00:53:0g",
            "",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn prefixes_refuse_host_bits() {
        assert!(IpNet::parse_text("198.18.0.0/15").is_ok());
        assert!(IpNet::parse_text("::/0").is_ok());
        assert!(IpNet::parse_text("198.18.0.1/15")
            .unwrap_err()
            .contains("198.18.0.0/15"));
        assert!(IpNet::parse_text("198.18.0.0").is_err());
    }
}
