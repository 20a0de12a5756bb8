//! Byte strings as base64 text (RFC 4648 §4: standard alphabet, `=`
//! padding), for `#[serde(with = "crate::base64")]` on `Vec<u8>` fields.
//! JSON has no byte strings and serde_json writes `Vec<u8>` as an array of
//! numbers, up to four characters per byte; base64 takes four per three.

use serde::de::{Unexpected, Visitor};
use serde::{Deserializer, Serializer};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const PAD: u8 = b'=';

pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&encode(bytes))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    struct Base64Visitor;

    impl Visitor<'_> for Base64Visitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a base64 string (RFC 4648, with padding)")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Vec<u8>, E> {
            decode(text).ok_or_else(|| E::invalid_value(Unexpected::Str(text), &self))
        }
    }

    deserializer.deserialize_str(Base64Visitor)
}

fn encode(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let group = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let bits = u32::from_be_bytes([0, group[0], group[1], group[2]]);
        // A chunk of n bytes fills n + 1 sextets; the rest are padding.
        for sextet_index in 0..4 {
            if sextet_index <= chunk.len() {
                let sextet = (bits >> (18 - 6 * sextet_index)) & 0x3f;
                text.push(ALPHABET[sextet as usize] as char);
            } else {
                text.push(PAD as char);
            }
        }
    }
    text
}

fn sextet_value(symbol: u8) -> Option<u32> {
    let value = match symbol {
        b'A'..=b'Z' => symbol - b'A',
        b'a'..=b'z' => symbol - b'a' + 26,
        b'0'..=b'9' => symbol - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(value))
}

/// None unless `text` is exactly what [`encode`] makes of some bytes: whole
/// groups of four, padding only at the end, unused bits zero.
fn decode(text: &str) -> Option<Vec<u8>> {
    let symbols = text.as_bytes();
    if symbols.len() % 4 != 0 {
        return None;
    }
    let mut bytes = Vec::with_capacity(symbols.len() / 4 * 3);
    let group_count = symbols.len() / 4;
    for (group_index, group) in symbols.chunks_exact(4).enumerate() {
        let padding = group
            .iter()
            .rev()
            .take_while(|&&symbol| symbol == PAD)
            .count();
        if padding > 2 || (padding > 0 && group_index + 1 != group_count) {
            return None;
        }
        let mut bits = 0u32;
        for &symbol in &group[..4 - padding] {
            bits = (bits << 6) | sextet_value(symbol)?;
        }
        bits <<= 6 * padding;
        let [_, first, second, third] = bits.to_be_bytes();
        let decoded = [first, second, third];
        let kept = 3 - padding;
        // The encoder leaves the bits past the last byte zero; anything else
        // is a second spelling of the same bytes.
        if decoded[kept..].iter().any(|&byte| byte != 0) {
            return None;
        }
        bytes.extend_from_slice(&decoded[..kept]);
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_4648_test_vectors() {
        // RFC 4648 §10.
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(encode(plain.as_bytes()), encoded);
            assert_eq!(decode(encoded).as_deref(), Some(plain.as_bytes()));
        }
    }

    #[test]
    fn every_byte_value_round_trips_at_every_length_remainder() {
        let all: Vec<u8> = (0..=255).collect();
        for start in 0..3 {
            let bytes = &all[start..];
            assert_eq!(decode(&encode(bytes)).as_deref(), Some(bytes));
        }
        assert_eq!(encode(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn rejects_what_the_encoder_never_writes() {
        for bad in [
            "Zg",       // no padding
            "Zg=",      // short padding
            "Z===",     // one symbol cannot make a byte
            "Zg==Zm8=", // padding before the end
            "Zh==",     // unused bits set
            "Zm9=",     // unused bits set
            "Zm 9",     // not in the alphabet
            "Zm9-",     // URL-safe alphabet
            "====",
        ] {
            assert_eq!(decode(bad), None, "{bad:?} was accepted");
        }
    }
}
