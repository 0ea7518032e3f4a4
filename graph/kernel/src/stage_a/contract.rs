//! A strict fast path for decoding `account-events` JSON values (`streams/contract.py` is the
//! contract and its authority). It accepts only what it can reproduce exactly as the Python decoder
//! would — required fields present and well-typed, RFC 3339 time with `T`, `Z` or `±HH:MM` and at most
//! six fraction digits in years 1970–2200, canonical dotted-quad IPv4, ASCII case folding, integers
//! within i64, no duplicate keys — and returns `None` for anything else, which the adapter then decodes
//! with msgspec (valid after all, or a dead letter with msgspec's reason). A differential test holds
//! the two to the same answers (tests/unit/test_contract.py).

use serde::Deserialize;
use std::borrow::Cow;

/// `asn`: a string ("AS16509") or an integer, read without buffering (serde's untagged enums copy the
/// value and build an error for each variant that does not match).
enum Asn<'a> {
    Int(i64),
    Str(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Asn<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Asn<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Asn::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v).map(Asn::Int).map_err(|_| E::custom("asn out of range"))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Asn::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Asn::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Asn::Str(Cow::Owned(v)))
            }
        }
        d.deserialize_any(V)
    }
}

/// An optional string, borrowed from the value unless it has escapes. (`#[serde(borrow)]` borrows a
/// `Cow<str>` field, but not one inside an `Option`: serde would copy every optional string.)
fn borrowed_opt<'de: 'a, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'b>(#[serde(borrow)] Cow<'b, str>);
    Ok(Option::<Borrowed<'a>>::deserialize(d)?.map(|b| b.0))
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow, rename = "type")]
    etype: Cow<'a, str>,
    #[serde(borrow)]
    account_id: Cow<'a, str>,
    #[serde(borrow)]
    ts: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt")]
    device_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt")]
    ip: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt")]
    payment_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt")]
    email_domain: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt")]
    user_agent: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    asn: Option<Asn<'a>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt")]
    country: Option<Cow<'a, str>>,
    #[serde(default)]
    requests: Option<i64>,
    #[serde(default)]
    tokens_in: Option<i64>,
    #[serde(default)]
    tokens_out: Option<i64>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt")]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt")]
    prompt_fingerprint: Option<Cow<'a, str>>,
}

/// A decoded event, its strings borrowed from the value or owned where they had to change.
pub struct Decoded<'a> {
    pub event_id: Cow<'a, str>,
    pub etype: u8,
    pub account: Cow<'a, str>,
    pub ts: f64,
    pub device: Option<Cow<'a, str>>,
    pub ip: Option<Cow<'a, str>>,
    pub payment: Option<Cow<'a, str>>,
    pub template: Option<Cow<'a, str>>,
    pub email_domain: Option<Cow<'a, str>>,
    pub asn: Option<Cow<'a, str>>,
    pub user_agent: Option<Cow<'a, str>>,
    pub country: Option<Cow<'a, str>>,
    pub model: Option<Cow<'a, str>>,
    pub requests: Option<u64>,
    pub tokens_in: Option<u64>,
    pub tokens_out: Option<u64>,
}

pub const MAX_EVENT_BYTES: usize = 64 * 1024;

pub fn decode(raw: &[u8]) -> Option<Decoded<'_>> {
    if raw.len() > MAX_EVENT_BYTES {
        return None;
    }
    let w: Wire = serde_json::from_slice(raw).ok()?;
    let etype = crate::stage_a::window::EVENT_TYPES.iter().position(|&t| t == w.etype)? as u8;
    if w.event_id.is_empty() || w.account_id.is_empty() {
        return None;
    }
    for f in [&w.device_id, &w.payment_id, &w.prompt_fingerprint] {
        if matches!(f, Some(s) if s.is_empty()) {
            return None;
        }
    }
    let ts = rfc3339(&w.ts)?;
    let ip = match w.ip {
        None => None,
        Some(s) if s.is_empty() => None,
        Some(s) if canonical_v4(&s) => Some(s),
        Some(_) => return None,
    };
    let email_domain = match w.email_domain {
        None => None,
        Some(s) if s.is_empty() => None,
        Some(s) if !s.is_ascii() => return None,
        Some(s) if s.bytes().any(|b| b.is_ascii_uppercase()) => Some(Cow::Owned(s.to_ascii_lowercase())),
        Some(s) => Some(s),
    };
    let asn = match w.asn {
        None => None,
        Some(Asn::Int(n)) => Some(Cow::Owned(format!("AS{n}"))),
        Some(Asn::Str(s)) if s.is_empty() => None,
        Some(Asn::Str(s)) if !s.is_ascii() => return None,
        Some(Asn::Str(s)) if s.bytes().any(|b| b.is_ascii_lowercase()) => Some(Cow::Owned(s.to_ascii_uppercase())),
        Some(Asn::Str(s)) => Some(s),
    };
    let count = |v: Option<i64>, min: i64| -> Result<Option<u64>, ()> {
        match v {
            None => Ok(None),
            Some(n) if n >= min => Ok(Some(n as u64)),
            Some(_) => Err(()),
        }
    };
    let requests = count(w.requests, 1).ok()?;
    let tokens_in = count(w.tokens_in, 0).ok()?;
    let tokens_out = count(w.tokens_out, 0).ok()?;
    Some(Decoded {
        event_id: w.event_id, etype, account: w.account_id, ts, device: w.device_id, ip, payment: w.payment_id,
        template: w.prompt_fingerprint, email_domain, asn, user_agent: w.user_agent, country: w.country,
        model: w.model, requests, tokens_in, tokens_out,
    })
}

/// Dotted-quad IPv4 exactly as Python's `ipaddress` prints it (no leading zeros, octets <= 255).
pub fn canonical_v4(s: &str) -> bool {
    let mut parts = 0;
    for part in s.split('.') {
        parts += 1;
        let b = part.as_bytes();
        if b.is_empty() || b.len() > 3 || !b.iter().all(u8::is_ascii_digit) || (b.len() > 1 && b[0] == b'0') {
            return false;
        }
        if part.parse::<u16>().map(|v| v > 255).unwrap_or(true) {
            return false;
        }
    }
    parts == 4
}

fn num(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |acc, &d| acc * 10 + (d - b'0') as i64))
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)` to epoch seconds, as `datetime.timestamp()` computes it
/// (microseconds / 1e6, correctly rounded); anything else is left to the authority.
pub fn rfc3339(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (h, mi, sec) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    if !(1970..=2200).contains(&y) || !(1..=12).contains(&mo) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if d < 1 || d > month_days[(mo - 1) as usize] {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let digits = end - start;
        if digits == 0 || digits > 6 {
            return None;
        }
        micros = num(&b[start..end])? * 10i64.pow((6 - digits) as u32);
        i = end;
    }
    let offset = match &b[i..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (oh, om) = (num(&[*h1, *h2])?, num(&[*m1, *m2])?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let seconds = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    let us = seconds * 1_000_000 + micros;
    Some(us as f64 / 1_000_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_and_addresses() {
        assert_eq!(rfc3339("2026-01-05T00:00:01.5Z"), Some(1767571201.5));
        assert_eq!(rfc3339("2026-01-05T01:00:00+01:00"), Some(1767571200.0));
        assert_eq!(rfc3339("2026-02-30T00:00:00Z"), None);
        assert_eq!(rfc3339("2026-01-05T00:00:00.1234567Z"), None);
        assert!(canonical_v4("10.0.0.1") && !canonical_v4("10.0.0.01") && !canonical_v4("256.1.1.1"));
    }

    #[test]
    fn optional_strings_borrow_from_the_value_unless_escaped() {
        let raw = br#"{"event_id":"e1","type":"login","account_id":"a1","ts":"2026-01-05T00:00:00Z","device_id":"d-1","payment_id":"p\u0031","model":"m"}"#;
        let d = decode(raw).expect("valid");
        assert!(matches!(d.device, Some(Cow::Borrowed("d-1"))));
        assert!(matches!(d.model, Some(Cow::Borrowed("m"))));
        assert!(matches!(d.payment.as_deref(), Some("p1")) && matches!(d.payment, Some(Cow::Owned(_))));
        assert!(d.ip.is_none());
    }
}
