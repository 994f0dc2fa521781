//! Syslog header decoding. This module owns everything between a raw log line
//! and the message text it carries: which header shape the line has (RFC 5424,
//! RFC 3164 as real senders write it — including dnsmasq's and Pi-hole's
//! `pihole.log` file line, which is RFC 3164 without PRI and hostname — or a
//! bare message), the header fields ([`Header`]), RFC 5424 structured data
//! ([`SdElement`]), the year and time-zone inference for RFC 3164 stamps
//! (which carry neither; see [`SyslogDecoder`] and [`Zone`]), and the names of
//! facilities and severities ([`facility_name`], [`severity_name`]).
//!
//! The grammar is a set of small `nom` parsers, one per syntactic element,
//! composed into [`SyslogDecoder::decode_at`]. A decoded [`Header`] borrows
//! from the line; nothing is allocated unless the line carries structured data
//! (or an escaped structured-data value). Decoding never fails and never
//! panics: a line that starts like a header but is malformed is reported with
//! [`Header::header_invalid`] set, and no text of the line is ever lost.

use std::borrow::Cow;
use std::str::FromStr;

use chrono::offset::LocalResult;
use chrono::{
    DateTime, Datelike, FixedOffset, Local, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Utc,
};
use nom::branch::alt;
use nom::bytes::complete::{take_till1, take_while_m_n};
use nom::character::complete::{char, one_of, space0, space1};
use nom::combinator::{all_consuming, eof, map, map_opt, opt, recognize, rest, value, verify};
use nom::multi::{many0, many1};
use nom::sequence::{delimited, pair, preceded, separated_pair, terminated, tuple};
use nom::IResult;

/// Result of the module's parsers: errors carry no data (they are only ever
/// used to try the next alternative), which keeps failed attempts cheap.
type Res<'a, T> = IResult<&'a str, T, ()>;

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/// Which header shape a line had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 5424: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]`.
    Rfc5424,
    /// RFC 3164 (BSD syslog): `[<PRI>]TIMESTAMP [HOSTNAME ]TAG: MSG`, which
    /// covers dnsmasq's own syslog output and its log-file line.
    Rfc3164,
    /// No recognisable header: the message is the whole line (or, for a
    /// malformed header after a valid PRI, the text after the PRI).
    Bare,
}

/// An RFC 5424 structured-data element, `[id name="value" ...]`, borrowed
/// from the line.
#[derive(Debug, Clone, PartialEq)]
pub struct SdElement<'a> {
    /// The SD-ID, e.g. `timeQuality` or `exampleSDID@32473`.
    pub id: &'a str,
    /// The parameters in line order. A value is borrowed from the line unless
    /// it contained an escape (`\"`, `\\`, `\]`), in which case it is the
    /// unescaped text.
    pub params: Vec<(&'a str, Cow<'a, str>)>,
}

/// A decoded syslog header plus the message it carries, borrowed from the line.
#[derive(Debug, Clone, PartialEq)]
pub struct Header<'a> {
    /// The header shape the line had.
    pub format: Format,
    /// The PRI value (facility × 8 + severity), when the line had a valid one.
    pub priority: Option<u8>,
    /// The RFC 5424 VERSION text (`"1"`); `None` for other shapes.
    pub version: Option<&'a str>,
    /// The instant of the header's timestamp. RFC 3164 stamps without year and
    /// zone are completed by the decoder (see [`SyslogDecoder`]).
    pub timestamp: Option<DateTime<Utc>>,
    /// The numeric UTC offset the header's stamp was written with, in seconds
    /// east (`None` for `Z`, a classic stamp, or no stamp).
    pub stated_offset: Option<i32>,
    /// The HOSTNAME field (`None` when absent or the NILVALUE `-`).
    pub hostname: Option<&'a str>,
    /// The APP-NAME field, or the RFC 3164 tag name (`dnsmasq`).
    pub appname: Option<&'a str>,
    /// The PROCID field, or the pid in an RFC 3164 tag `dnsmasq[1234]:`.
    pub procid: Option<&'a str>,
    /// The RFC 5424 MSGID field.
    pub msgid: Option<&'a str>,
    /// The RFC 5424 structured data; empty (and unallocated) when there is none.
    pub structured_data: Vec<SdElement<'a>>,
    /// True when the line started like a syslog header but the header was malformed.
    pub header_invalid: bool,
    /// The text after the header: always a suffix of the line (without a
    /// trailing `\r` and without a leading UTF-8 BOM).
    pub message: &'a str,
}

impl<'a> Header<'a> {
    /// A header-less [`Format::Bare`] header whose message is `message`.
    pub fn bare(message: &'a str) -> Self {
        Header {
            format: Format::Bare,
            priority: None,
            version: None,
            timestamp: None,
            stated_offset: None,
            hostname: None,
            appname: None,
            procid: None,
            msgid: None,
            structured_data: Vec::new(),
            header_invalid: false,
            message,
        }
    }

    /// The facility code (`priority / 8`), when there is a priority.
    pub fn facility(&self) -> Option<u8> {
        self.priority.map(|p| p >> 3)
    }

    /// The severity code (`priority % 8`), when there is a priority.
    pub fn severity(&self) -> Option<u8> {
        self.priority.map(|p| p & 7)
    }
}

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// The conventional name of a syslog facility code (0 → `kern` … 23 →
/// `local7`); `unknown` for codes above 23.
pub fn facility_name(code: u8) -> &'static str {
    FACILITIES
        .get(usize::from(code))
        .copied()
        .unwrap_or("unknown")
}

/// The conventional name of a syslog severity code (0 → `emerg` … 7 →
/// `debug`); `unknown` for codes above 7.
pub fn severity_name(code: u8) -> &'static str {
    SEVERITIES
        .get(usize::from(code))
        .copied()
        .unwrap_or("unknown")
}

/// The time zone in which RFC 3164 stamps (which carry none) are read.
#[derive(Debug, Clone, PartialEq)]
pub enum Zone {
    /// The machine's local zone (`chrono::Local`, i.e. `TZ` or `/etc/localtime`).
    Local,
    /// An IANA zone such as `Europe/Berlin`.
    Named(chrono_tz::Tz),
    /// A fixed offset from UTC (`UTC` itself is `Fixed(+00:00)`).
    Fixed(FixedOffset),
}

impl FromStr for Zone {
    type Err = String;

    /// Accepts `local` (any case), `UTC`/`utc`/`Z`, an IANA name such as
    /// `Europe/Berlin`, or a fixed offset such as `+02:00`, `-0530` or `+2`.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("local") {
            return Ok(Zone::Local);
        }
        if t.eq_ignore_ascii_case("utc") || t.eq_ignore_ascii_case("z") {
            return Ok(Zone::Fixed(Utc.fix()));
        }
        if let Ok((_, secs)) = all_consuming(fixed_offset)(t) {
            if let Some(offset) = FixedOffset::east_opt(secs) {
                return Ok(Zone::Fixed(offset));
            }
        }
        t.parse::<chrono_tz::Tz>().map(Zone::Named).map_err(|_| {
            format!(
                "invalid time zone {s:?}: expected `local`, `UTC`, an IANA zone name \
                 such as `Europe/Berlin`, or a fixed offset such as `+02:00`, `-0530` or `+2`"
            )
        })
    }
}

impl Zone {
    /// The offsets (seconds east of UTC) a local wall-clock time has here.
    fn offsets_at(&self, local: NaiveDateTime) -> LocalResult<i32> {
        match self {
            Zone::Local => Local
                .offset_from_local_datetime(&local)
                .map(|o| o.local_minus_utc()),
            Zone::Named(tz) => tz
                .offset_from_local_datetime(&local)
                .map(|o| o.fix().local_minus_utc()),
            Zone::Fixed(o) => LocalResult::Single(o.local_minus_utc()),
        }
    }

    /// The instant of a local wall-clock time: in a DST gap the time is
    /// shifted forward one hour; an ambiguous time takes the earliest instant.
    fn local_to_utc(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        if let Some(offset) = earliest_offset(self.offsets_at(local)) {
            return sub_offset(local, offset);
        }
        let later = local.checked_add_signed(TimeDelta::hours(1))?;
        sub_offset(later, earliest_offset(self.offsets_at(later))?)
    }

    /// The calendar year of `now` in this zone.
    fn year_at(&self, now: DateTime<Utc>) -> i32 {
        match self {
            Zone::Local => now.with_timezone(&Local).year(),
            Zone::Named(tz) => now.with_timezone(tz).year(),
            Zone::Fixed(o) => now.with_timezone(o).year(),
        }
    }
}

/// The offset giving the earliest instant (the larger offset when ambiguous).
fn earliest_offset(r: LocalResult<i32>) -> Option<i32> {
    match r {
        LocalResult::Single(o) => Some(o),
        LocalResult::Ambiguous(a, b) => Some(a.max(b)),
        LocalResult::None => None,
    }
}

/// `local - offset` as a UTC instant.
fn sub_offset(local: NaiveDateTime, offset_secs: i32) -> Option<DateTime<Utc>> {
    local
        .checked_sub_signed(TimeDelta::seconds(i64::from(offset_secs)))
        .map(|t| t.and_utc())
}

// ---------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------

/// An RFC 3164 stamp is taken to be at most this far ahead of `now` (more
/// means it is from the previous year: a Dec 31 line read on Jan 1).
const MAX_AHEAD_SECS: i64 = 2 * 86_400;
/// An RFC 3164 stamp is taken to be at most this far behind `now` (more means
/// it is from the next year: a Jan 1 line read on Dec 31 by a lagging clock).
const MAX_BEHIND_SECS: i64 = 300 * 86_400;
/// A cached stamp conversion is reused while `now` stays this close to the
/// `now` it was computed for.
const CACHE_NOW_SLACK_SECS: u64 = 3_600;
/// Key of an empty cache slot (no real key reaches it).
const EMPTY: u64 = u64::MAX;

/// The last converted RFC 3164 stamp.
#[derive(Debug, Clone, Copy)]
struct StampCache {
    key: u64,
    now_secs: i64,
    value: Option<DateTime<Utc>>,
}

/// The UTC offset of the last local (year, month, day, hour) that was on a
/// single offset for the whole hour.
#[derive(Debug, Clone, Copy)]
struct HourCache {
    key: u64,
    offset_secs: i32,
}

/// Decodes syslog headers; keeps a small cache for timestamp conversion.
///
/// RFC 3164 stamps (`Nov 28 01:02:03`) are read in the decoder's [`Zone`].
/// Their year is the year of `now` in that zone, unless that puts the stamp
/// more than 2 days ahead of `now` (then it is the previous year) or more
/// than 300 days behind (then the next year). A Feb 29 stamp in a common
/// year takes the nearer neighbouring year that has a Feb 29, if any, else no
/// timestamp. Consecutive lines with the same stamp reuse the last
/// conversion, so the common case does no time-zone work at all.
#[derive(Debug, Clone)]
pub struct SyslogDecoder {
    zone: Zone,
    stamp_cache: StampCache,
    hour_cache: HourCache,
}

impl SyslogDecoder {
    /// A decoder reading RFC 3164 stamps in `zone`.
    pub fn new(zone: Zone) -> Self {
        SyslogDecoder {
            zone,
            stamp_cache: StampCache {
                key: EMPTY,
                now_secs: 0,
                value: None,
            },
            hour_cache: HourCache {
                key: EMPTY,
                offset_secs: 0,
            },
        }
    }

    /// The zone RFC 3164 stamps are read in.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// Decodes one line (without its newline; a trailing `\r` is ignored),
    /// inferring RFC 3164 years relative to the current time.
    pub fn decode<'a>(&mut self, line: &'a str) -> Header<'a> {
        self.decode_at(line, Utc::now())
    }

    /// Decodes one line as if the current time were `now`, reading a zone-less
    /// stamp at `offset` (seconds east of UTC) instead of the decoder's zone:
    /// for a line a relay wrapped in a header stamped with its own offset.
    pub fn decode_at_offset<'a>(
        &mut self,
        line: &'a str,
        now: DateTime<Utc>,
        offset: i32,
    ) -> Header<'a> {
        let Some(fixed) = FixedOffset::east_opt(offset) else {
            return self.decode_at(line, now);
        };
        let zone = std::mem::replace(&mut self.zone, Zone::Fixed(fixed));
        // The caches hold conversions in the decoder's own zone.
        let (stamps, hours) = (self.stamp_cache, self.hour_cache);
        self.stamp_cache.key = EMPTY;
        let header = self.decode_at(line, now);
        self.zone = zone;
        self.stamp_cache = stamps;
        self.hour_cache = hours;
        header
    }

    /// Decodes one line as if the current time were `now`.
    pub fn decode_at<'a>(&mut self, line: &'a str, now: DateTime<Utc>) -> Header<'a> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        match pri(line) {
            Ok((after, priority)) => self.decode_after_pri(after, priority, now),
            Err(_) => self.decode_without_pri(line, now),
        }
    }

    fn decode_after_pri<'a>(&mut self, after: &'a str, pri: u8, now: DateTime<Utc>) -> Header<'a> {
        if let Ok((_, parts)) = rfc5424(after) {
            return parts.into_header(pri);
        }
        if let Ok((_, body)) = rfc3164(after) {
            let timestamp = self.resolve(body.stamp, now);
            return body.into_header(Some(pri), timestamp);
        }
        Header {
            priority: Some(pri),
            header_invalid: true,
            ..Header::bare(after)
        }
    }

    fn decode_without_pri<'a>(&mut self, line: &'a str, now: DateTime<Utc>) -> Header<'a> {
        if let Ok((_, body)) = rfc3164(line) {
            let timestamp = self.resolve(body.stamp, now);
            return body.into_header(None, timestamp);
        }
        if pri_like(line).is_ok() {
            return Header {
                header_invalid: true,
                ..Header::bare(line)
            };
        }
        // A time-only prefix (`HH:MM:SS dnsmasq[pid]: …`, some routers'
        // log views): the time is not a whole stamp, so the receive time is used.
        let after_time = match time_of_day(line) {
            Ok((rest, _)) if rest.starts_with(' ') => rest.trim_start(),
            _ => line,
        };
        if let Ok((message, (appname, procid))) =
            tag_with_pid(after_time).or_else(|_| tag_with_pid(line))
        {
            return Header {
                appname: Some(appname),
                procid,
                ..Header::bare(message)
            };
        }
        Header::bare(line)
    }

    /// The instant of a parsed RFC 3164 stamp.
    fn resolve(&mut self, stamp: Stamp, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match stamp {
            Stamp::Absolute(t, _) => Some(t),
            Stamp::Local(t) => self.zone.local_to_utc(t),
            Stamp::Bsd(s) => self.resolve_bsd(s, now),
        }
    }

    /// A `Mmm dd HH:MM:SS` stamp's instant, from the cache when possible.
    fn resolve_bsd(&mut self, s: BsdStamp, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let key = s.key();
        let now_secs = now.timestamp();
        let c = self.stamp_cache;
        if c.key == key && c.now_secs.abs_diff(now_secs) <= CACHE_NOW_SLACK_SECS {
            return c.value;
        }
        let value = self.infer_year(s, now);
        self.stamp_cache = StampCache {
            key,
            now_secs,
            value,
        };
        value
    }

    /// Completes a stamp with the year that puts it nearest `now` (see the
    /// type's documentation for the rule).
    fn infer_year(&mut self, s: BsdStamp, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let year = self.zone.year_at(now);
        let now_secs = now.timestamp();
        let Some(t) = self.bsd_to_utc(s, year) else {
            // No such day this year (Feb 29 of a common year).
            return [year - 1, year + 1]
                .into_iter()
                .filter_map(|y| self.bsd_to_utc(s, y))
                .min_by_key(|t| t.timestamp().abs_diff(now_secs));
        };
        let ahead = t.timestamp() - now_secs;
        let other_year = if ahead > MAX_AHEAD_SECS {
            year - 1
        } else if -ahead > MAX_BEHIND_SECS {
            year + 1
        } else {
            return Some(t);
        };
        self.bsd_to_utc(s, other_year).or(Some(t))
    }

    /// The instant of a stamp in `year`, read in the decoder's zone.
    fn bsd_to_utc(&mut self, s: BsdStamp, year: i32) -> Option<DateTime<Utc>> {
        let date = NaiveDate::from_ymd_opt(year, s.month, s.day)?;
        let local = date.and_time(naive_time(s.hour, s.minute, s.second, 0)?);
        if let Zone::Fixed(o) = self.zone {
            return sub_offset(local, o.local_minus_utc());
        }
        let hour_key = (u64::from(year as u32) << 32) | (s.key() >> 12);
        if self.hour_cache.key == hour_key {
            return sub_offset(local, self.hour_cache.offset_secs);
        }
        let start = date.and_hms_opt(s.hour, 0, 0)?;
        let end = date.and_hms_opt(s.hour, 59, 59)?;
        if let (LocalResult::Single(a), LocalResult::Single(b)) =
            (self.zone.offsets_at(start), self.zone.offsets_at(end))
        {
            if a == b {
                self.hour_cache = HourCache {
                    key: hour_key,
                    offset_secs: a,
                };
                return sub_offset(local, a);
            }
        }
        self.zone.local_to_utc(local)
    }
}

// ---------------------------------------------------------------------------
// Shared tiny parsers
// ---------------------------------------------------------------------------

/// An ASCII digit.
fn is_digit(b: u8) -> bool {
    b.is_ascii_digit()
}

/// PRINTUSASCII of RFC 5424: `!` to `~`.
fn is_print_ascii(b: u8) -> bool {
    (b'!'..=b'~').contains(&b)
}

/// `min` to `max` leading bytes that satisfy `pred`, which must accept ASCII
/// bytes only (so the split is on a character boundary). This is the
/// module's scanning primitive: a byte loop, much cheaper than a char one.
fn ascii_run(min: usize, max: usize, pred: fn(u8) -> bool) -> impl Fn(&str) -> Res<'_, &str> {
    move |i| {
        let n = i.bytes().take(max).take_while(|&b| pred(b)).count();
        if n < min {
            return Err(nom::Err::Error(()));
        }
        Ok((&i[n..], &i[..n]))
    }
}

/// One or more ASCII digits.
fn digits(i: &str) -> Res<'_, &str> {
    ascii_run(1, usize::MAX, is_digit)(i)
}

/// The value of a run of ASCII digits (callers bound its length).
fn digits_value(s: &str) -> u32 {
    s.bytes().fold(0u32, |acc, b| {
        acc.wrapping_mul(10).wrapping_add(u32::from(b - b'0'))
    })
}

/// One space.
fn sp(i: &str) -> Res<'_, char> {
    char(' ')(i)
}

/// Exactly `n` ASCII digits, as a number.
fn fixed_digits(n: usize) -> impl Fn(&str) -> Res<'_, u32> {
    move |i| map(ascii_run(n, n, is_digit), digits_value)(i)
}

/// `HH:MM:SS`, range-checked (a leap second `60` is allowed).
fn time_of_day(i: &str) -> Res<'_, (u32, u32, u32)> {
    verify(
        map(
            tuple((
                fixed_digits(2),
                char(':'),
                fixed_digits(2),
                char(':'),
                fixed_digits(2),
            )),
            |(h, _, m, _, s)| (h, m, s),
        ),
        |&(h, m, s)| h < 24 && m < 60 && s <= 60,
    )(i)
}

/// A wall-clock time; a leap second is kept the way chrono represents it.
fn naive_time(h: u32, m: u32, s: u32, micro: u32) -> Option<NaiveTime> {
    if s == 60 {
        NaiveTime::from_hms_micro_opt(h, m, 59, 1_000_000 + micro)
    } else {
        NaiveTime::from_hms_micro_opt(h, m, s, micro)
    }
}

/// `<PRI>`: one to three digits with a value of at most 191.
fn pri(i: &str) -> Res<'_, u8> {
    map_opt(
        delimited(char('<'), ascii_run(1, 3, is_digit), char('>')),
        |d: &str| u8::try_from(digits_value(d)).ok().filter(|&p| p <= 191),
    )(i)
}

/// Something that looks like an attempt at a PRI (`<` and digits, or a short
/// `<...>`), used to flag lines whose PRI is out of range or not numeric.
fn pri_like(i: &str) -> Res<'_, &str> {
    alt((
        recognize(pair(char('<'), digits)),
        recognize(delimited(
            char('<'),
            take_while_m_n(0, 5, |c: char| c != '>' && c != '<' && c != ' '),
            char('>'),
        )),
    ))(i)
}

/// Strips a leading UTF-8 byte-order mark.
fn strip_bom(msg: &str) -> &str {
    msg.strip_prefix('\u{FEFF}').unwrap_or(msg)
}

// ---------------------------------------------------------------------------
// RFC 3339 timestamps
// ---------------------------------------------------------------------------

/// `YYYY-MM-DD`, a valid calendar date.
fn full_date(i: &str) -> Res<'_, NaiveDate> {
    map_opt(
        tuple((
            fixed_digits(4),
            char('-'),
            fixed_digits(2),
            char('-'),
            fixed_digits(2),
        )),
        |(y, _, m, _, d)| NaiveDate::from_ymd_opt(y as i32, m, d),
    )(i)
}

/// `.` and one or more digits, as microseconds (digits past six are dropped).
fn fraction(i: &str) -> Res<'_, u32> {
    map(preceded(char('.'), digits), |d: &str| {
        let d = &d[..d.len().min(6)];
        digits_value(d) * 10u32.pow(6 - d.len() as u32)
    })(i)
}

/// `Z` or `±HH:MM`, as seconds east of UTC.
#[cfg(test)]
fn utc_offset(i: &str) -> Res<'_, i32> {
    map(stated_offset, |o| o.unwrap_or(0))(i)
}

/// A TIME-OFFSET as written: `None` for `Z` (a UTC stamp, which says nothing
/// about the writer's own zone), else the numeric offset in seconds east.
fn stated_offset(i: &str) -> Res<'_, Option<i32>> {
    alt((
        value(None, one_of("Zz")),
        map(
            map_opt(
                tuple((one_of("+-"), fixed_digits(2), char(':'), fixed_digits(2))),
                |(sign, h, _, m)| {
                    let secs = (h * 3600 + m * 60) as i32;
                    (h < 24 && m < 60).then_some(if sign == '-' { -secs } else { secs })
                },
            ),
            Some,
        ),
    ))(i)
}

/// An RFC 3339 date-time with optional fraction and a mandatory offset.
#[cfg(test)]
fn rfc3339(i: &str) -> Res<'_, DateTime<Utc>> {
    map(rfc3339_stated, |(t, _)| t)(i)
}

/// An RFC 3339 date-time and its offset as written (see [`stated_offset`]).
fn rfc3339_stated(i: &str) -> Res<'_, (DateTime<Utc>, Option<i32>)> {
    map_opt(
        tuple((
            full_date,
            one_of("Tt"),
            time_of_day,
            opt(fraction),
            stated_offset,
        )),
        |(date, _, (h, m, s), micro, offset)| {
            let local = date.and_time(naive_time(h, m, s, micro.unwrap_or(0))?);
            Some((sub_offset(local, offset.unwrap_or(0))?, offset))
        },
    )(i)
}

// ---------------------------------------------------------------------------
// RFC 5424
// ---------------------------------------------------------------------------

/// VERSION: a non-zero digit and up to two more digits.
fn version(i: &str) -> Res<'_, &str> {
    recognize(pair(one_of("123456789"), ascii_run(0, 2, is_digit)))(i)
}

/// TIMESTAMP: RFC 3339 or the NILVALUE.
#[cfg(test)]
fn nil_or_timestamp(i: &str) -> Res<'_, Option<DateTime<Utc>>> {
    map(nil_or_stated_timestamp, |t| t.map(|(t, _)| t))(i)
}

/// TIMESTAMP with its offset as written.
fn nil_or_stated_timestamp(i: &str) -> Res<'_, Option<(DateTime<Utc>, Option<i32>)>> {
    alt((value(None, char('-')), map(rfc3339_stated, Some)))(i)
}

/// A header field of 1 to `max` printable ASCII characters; the NILVALUE
/// `-` is `None`.
fn nil_or_field(max: usize) -> impl Fn(&str) -> Res<'_, Option<&str>> {
    move |i| {
        map(ascii_run(1, max, is_print_ascii), |s: &str| {
            (s != "-").then_some(s)
        })(i)
    }
}

/// SD-NAME: 1 to 32 printable ASCII characters except `=`, `]` and `"`.
fn sd_name(i: &str) -> Res<'_, &str> {
    ascii_run(1, 32, |b| {
        is_print_ascii(b) && !matches!(b, b'=' | b']' | b'"')
    })(i)
}

/// The inside of a PARAM-VALUE, up to (not including) the closing quote.
/// Borrowed unless it contains an escape (`\"`, `\\`, `\]`).
fn sd_value(i: &str) -> Res<'_, Cow<'_, str>> {
    let bytes = i.as_bytes();
    let mut escaped = false;
    let mut j = 0;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' if matches!(bytes.get(j + 1), Some(b'"' | b'\\' | b']')) => {
                escaped = true;
                j += 2;
            }
            b'"' => {
                let raw = &i[..j];
                let v = if escaped {
                    Cow::Owned(unescape_sd(raw))
                } else {
                    Cow::Borrowed(raw)
                };
                return Ok((&i[j..], v));
            }
            _ => j += 1,
        }
    }
    Err(nom::Err::Error(()))
}

/// Resolves `\"`, `\\` and `\]`; any other backslash stays as it is.
fn unescape_sd(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.clone().next() {
                Some(n @ ('"' | '\\' | ']')) => {
                    out.push(n);
                    chars.next();
                }
                _ => out.push(c),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// SD-PARAM: `name="value"`.
fn sd_param(i: &str) -> Res<'_, (&str, Cow<'_, str>)> {
    separated_pair(
        sd_name,
        char('='),
        delimited(char('"'), sd_value, char('"')),
    )(i)
}

/// SD-ELEMENT: `[id name="value" ...]`.
fn sd_element(i: &str) -> Res<'_, SdElement<'_>> {
    map(
        delimited(
            char('['),
            pair(sd_name, many0(preceded(sp, sd_param))),
            char(']'),
        ),
        |(id, params)| SdElement { id, params },
    )(i)
}

/// STRUCTURED-DATA: the NILVALUE (no allocation) or one or more elements.
fn structured_data(i: &str) -> Res<'_, Vec<SdElement<'_>>> {
    alt((value(Vec::new(), char('-')), many1(sd_element)))(i)
}

/// `[SP MSG]` after the structured data, without a leading BOM.
fn msg_5424(i: &str) -> Res<'_, &str> {
    alt((value("", eof), preceded(sp, map(rest, strip_bom))))(i)
}

/// The fields of an RFC 5424 header.
struct Parts5424<'a> {
    version: &'a str,
    timestamp: Option<DateTime<Utc>>,
    offset: Option<i32>,
    hostname: Option<&'a str>,
    appname: Option<&'a str>,
    procid: Option<&'a str>,
    msgid: Option<&'a str>,
    structured_data: Vec<SdElement<'a>>,
    message: &'a str,
}

impl<'a> Parts5424<'a> {
    fn into_header(self, priority: u8) -> Header<'a> {
        Header {
            format: Format::Rfc5424,
            priority: Some(priority),
            version: Some(self.version),
            timestamp: self.timestamp,
            stated_offset: self.offset,
            hostname: self.hostname,
            appname: self.appname,
            procid: self.procid,
            msgid: self.msgid,
            structured_data: self.structured_data,
            header_invalid: false,
            message: self.message,
        }
    }
}

/// An RFC 5424 line after its PRI.
fn rfc5424(i: &str) -> Res<'_, Parts5424<'_>> {
    let (i, version) = terminated(version, sp)(i)?;
    let (i, stamp) = terminated(nil_or_stated_timestamp, sp)(i)?;
    let (timestamp, offset) = (stamp.map(|s| s.0), stamp.and_then(|s| s.1));
    let (i, hostname) = terminated(nil_or_field(255), sp)(i)?;
    let (i, appname) = terminated(nil_or_field(48), sp)(i)?;
    let (i, procid) = terminated(nil_or_field(128), sp)(i)?;
    let (i, msgid) = terminated(nil_or_field(32), sp)(i)?;
    let (i, structured_data) = structured_data(i)?;
    let (i, message) = msg_5424(i)?;
    let parts = Parts5424 {
        version,
        timestamp,
        offset,
        hostname,
        appname,
        procid,
        msgid,
        structured_data,
        message,
    };
    Ok((i, parts))
}

// ---------------------------------------------------------------------------
// RFC 3164
// ---------------------------------------------------------------------------

/// A `Mmm dd HH:MM:SS` stamp: no year, no zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BsdStamp {
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl BsdStamp {
    /// The stamp packed into an integer (month, day, hour in the high bits,
    /// so `key() >> 12` identifies the hour).
    fn key(self) -> u64 {
        u64::from(
            (self.month << 22)
                | (self.day << 17)
                | (self.hour << 12)
                | (self.minute << 6)
                | self.second,
        )
    }
}

/// The timestamp position of an RFC 3164 header.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stamp {
    /// An RFC 3339 stamp (rsyslog's RFC 3339 templates) and its offset as
    /// written.
    Absolute(DateTime<Utc>, Option<i32>),
    /// A classic BSD stamp, to be completed with year and zone.
    Bsd(BsdStamp),
    /// `YYYY-MM-DD HH:MM:SS[.fff]` in local time: what Pi-hole v6's web
    /// interface and API show, and what users paste.
    Local(NaiveDateTime),
}

/// `YYYY-MM-DD HH:MM:SS[.fff]` without a zone, also with `T` between date
/// and time (syslog-ng's `loggen` and some relays write ISO 8601 stamps
/// without an offset).
fn local_datetime(i: &str) -> Res<'_, NaiveDateTime> {
    map_opt(
        tuple((full_date, alt((sp, char('T'))), time_of_day, opt(fraction))),
        |(date, _, (h, m, s), micro)| Some(date.and_time(naive_time(h, m, s, micro.unwrap_or(0))?)),
    )(i)
}

/// `Mmm`: an English month abbreviation, as 1–12.
fn month_abbr(i: &str) -> Res<'_, u32> {
    map_opt(ascii_run(3, 3, |b| b.is_ascii_alphabetic()), |m: &str| {
        let n = match m {
            "Jan" => 1,
            "Feb" => 2,
            "Mar" => 3,
            "Apr" => 4,
            "May" => 5,
            "Jun" => 6,
            "Jul" => 7,
            "Aug" => 8,
            "Sep" => 9,
            "Oct" => 10,
            "Nov" => 11,
            "Dec" => 12,
            _ => return None,
        };
        Some(n)
    })(i)
}

/// The day of month: space-padded (` 8`), zero-padded (`08`) or bare (`8`).
fn bsd_day(i: &str) -> Res<'_, u32> {
    verify(
        map(preceded(opt(sp), ascii_run(1, 2, is_digit)), digits_value),
        |d| (1..=31).contains(d),
    )(i)
}

/// `Mmm dd HH:MM:SS`.
fn bsd_stamp(i: &str) -> Res<'_, BsdStamp> {
    map(
        tuple((month_abbr, sp, bsd_day, sp, time_of_day)),
        |(month, _, day, _, (hour, minute, second))| BsdStamp {
            month,
            day,
            hour,
            minute,
            second,
        },
    )(i)
}

/// `Www Mmm dd HH:MM:SS YYYY` (C's `ctime()`), as OpenWrt's `logread`
/// writes it: a local time with a year.
fn ctime_stamp(i: &str) -> Res<'_, NaiveDateTime> {
    map_opt(
        tuple((
            ascii_run(3, 3, |b| b.is_ascii_alphabetic()),
            sp,
            month_abbr,
            sp,
            bsd_day,
            sp,
            time_of_day,
            sp,
            ascii_run(4, 4, is_digit),
        )),
        |(_, _, month, _, day, _, (h, m, s), _, year)| {
            let year = i32::try_from(digits_value(year)).ok()?;
            Some(NaiveDate::from_ymd_opt(year, month, day)?.and_time(naive_time(h, m, s, 0)?))
        },
    )(i)
}

/// The RFC 3164 timestamp: RFC 3339 or `Mmm dd HH:MM:SS`.
fn stamp_3164(i: &str) -> Res<'_, Stamp> {
    alt((
        map(ctime_stamp, Stamp::Local),
        map(rfc3339_stated, |(t, o)| Stamp::Absolute(t, o)),
        map(local_datetime, Stamp::Local),
        map(bsd_stamp, Stamp::Bsd),
    ))(i)
}

/// A tag name: ASCII letters, digits, `-`, `.`, `_` and `/`.
fn tag_name(i: &str) -> Res<'_, &str> {
    ascii_run(1, usize::MAX, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'/')
    })(i)
}

/// A tag: its name and, for `name[pid]:`, the pid.
type Tag<'a> = (&'a str, Option<&'a str>);

/// `[digits]`, or Unbound's `[pid:thread]` (its own log file with
/// `log-time-ascii`), of which the pid is kept.
fn pid(i: &str) -> Res<'_, &str> {
    delimited(
        char('['),
        terminated(digits, opt(pair(char(':'), digits))),
        char(']'),
    )(i)
}

/// `name[pid]:` and the spaces after it.
fn tag_with_pid(i: &str) -> Res<'_, Tag<'_>> {
    map(
        terminated(pair(tag_name, pid), pair(char(':'), space0)),
        |(name, pid)| (name, Some(pid)),
    )(i)
}

/// `name:` ending a word, and the spaces after it (so that `fe80::1` is no tag).
fn tag_plain(i: &str) -> Res<'_, Tag<'_>> {
    map(
        terminated(tag_name, pair(char(':'), alt((space1, eof)))),
        |name| (name, None),
    )(i)
}

/// TAG: `name[pid]:` or `name:`, as (name, pid).
fn syslog_tag(i: &str) -> Res<'_, Tag<'_>> {
    alt((tag_with_pid, tag_plain, tag_with_thread))(i)
}

/// Unbound's own log file with `log-time-ascii`: `unbound[pid:thread] ` with
/// no colon (the message type follows: `info: …`).
fn tag_with_thread(i: &str) -> Res<'_, Tag<'_>> {
    map(
        terminated(
            pair(
                tag_name,
                delimited(
                    char('['),
                    terminated(digits, pair(char(':'), digits)),
                    char(']'),
                ),
            ),
            space1,
        ),
        |(name, pid)| (name, Some(pid)),
    )(i)
}

/// A hostname: a word that does not end with `:` (that would be a tag).
fn hostname(i: &str) -> Res<'_, &str> {
    verify(take_till1(|c| c == ' '), |h: &str| !h.ends_with(':'))(i)
}

/// `facility.severity` as BusyBox syslogd and some routers write it between
/// hostname and tag (`fritz daemon.info dnsmasq[2886]: …`), as a priority.
fn facility_severity(i: &str) -> Res<'_, u8> {
    map_opt(
        separated_pair(
            ascii_run(2, 12, |b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            char('.'),
            ascii_run(3, 7, |b| b.is_ascii_lowercase()),
        ),
        |(f, s)| {
            let f = (0..24u8).find(|&c| facility_name(c) == f)?;
            let s = (0..8u8).find(|&c| severity_name(c) == s)?;
            Some(f * 8 + s)
        },
    )(i)
}

/// What follows an RFC 3164 stamp: `[HOSTNAME SP [FACILITY.SEVERITY SP]] TAG
/// MSG`. Without a valid tag the whole text is the message, with no hostname.
fn host_tag_message(i: &str) -> (Option<&str>, Option<u8>, Option<Tag<'_>>, &str) {
    if let Ok((msg, tag)) = syslog_tag(i) {
        return (None, None, Some(tag), msg);
    }
    // OpenWrt's logread: `daemon.info dnsmasq[1234]: …`, no hostname.
    if let Ok((msg, (pri, tag))) = pair(terminated(facility_severity, space1), syslog_tag)(i) {
        return (None, Some(pri), Some(tag), msg);
    }
    if let Ok((msg, (host, tag))) = pair(terminated(hostname, space1), syslog_tag)(i) {
        return (Some(host), None, Some(tag), msg);
    }
    if let Ok((msg, (host, pri, tag))) = tuple((
        terminated(hostname, space1),
        terminated(facility_severity, space1),
        syslog_tag,
    ))(i)
    {
        return (Some(host), Some(pri), Some(tag), msg);
    }
    (None, None, None, i)
}

/// The parts of an RFC 3164 line after its optional PRI.
struct Body3164<'a> {
    stamp: Stamp,
    hostname: Option<&'a str>,
    /// A priority written as `facility.severity` after the hostname.
    inline_priority: Option<u8>,
    tag: Option<Tag<'a>>,
    message: &'a str,
}

impl<'a> Body3164<'a> {
    fn into_header(self, priority: Option<u8>, timestamp: Option<DateTime<Utc>>) -> Header<'a> {
        let stated_offset = match self.stamp {
            Stamp::Absolute(_, o) => o,
            _ => None,
        };
        Header {
            format: Format::Rfc3164,
            priority: priority.or(self.inline_priority),
            timestamp,
            stated_offset,
            hostname: self.hostname,
            appname: self.tag.map(|t| t.0),
            procid: self.tag.and_then(|t| t.1),
            ..Header::bare(strip_bom(self.message))
        }
    }
}

/// An RFC 3164 line after its optional PRI: a stamp, then spaces (or the end
/// of the line), then hostname, tag and message.
fn rfc3164(i: &str) -> Res<'_, Body3164<'_>> {
    let (i, stamp) = terminated(stamp_3164, alt((space1, eof)))(i)?;
    let (hostname, inline_priority, tag, message) = host_tag_message(i);
    let body = Body3164 {
        stamp,
        hostname,
        inline_priority,
        tag,
        message,
    };
    Ok(("", body))
}

// ---------------------------------------------------------------------------
// Zone setting
// ---------------------------------------------------------------------------

/// A fixed offset `±H`, `±HH`, `±HHMM` or `±HH:MM`, as seconds east of UTC.
fn fixed_offset(i: &str) -> Res<'_, i32> {
    map_opt(
        tuple((
            one_of("+-"),
            ascii_run(1, 2, is_digit),
            opt(preceded(opt(char(':')), fixed_digits(2))),
        )),
        |(sign, h, m)| {
            let (h, m) = (digits_value(h), m.unwrap_or(0));
            let secs = (h * 3600 + m * 60) as i32;
            (h < 24 && m < 60).then_some(if sign == '-' { -secs } else { secs })
        },
    )(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Berlin;
    use proptest::prelude::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn now() -> DateTime<Utc> {
        utc(2026, 11, 28, 12, 0, 0)
    }

    fn utc_decoder() -> SyslogDecoder {
        SyslogDecoder::new("UTC".parse().unwrap())
    }

    fn berlin() -> SyslogDecoder {
        SyslogDecoder::new(Zone::Named(Berlin))
    }

    fn decode(line: &str) -> Header<'_> {
        utc_decoder().decode_at(line, now())
    }

    #[test]
    fn openwrt_logread_ctime_and_facility_severity() {
        let h = decode(
            "Wed Dec  2 14:55:26 2026 daemon.info dnsmasq[1234]: query[A] a.example from 192.0.2.1",
        );
        assert_eq!(h.appname, Some("dnsmasq"));
        assert_eq!(h.procid, Some("1234"));
        assert_eq!(h.hostname, None);
        assert_eq!(h.priority, Some(3 * 8 + 6));
        assert_eq!(h.timestamp, Some(utc(2026, 12, 2, 14, 55, 26)));
        assert_eq!(h.message, "query[A] a.example from 192.0.2.1");
        // An impossible date is no stamp.
        let h = decode("Wed Feb 30 14:55:26 2026 daemon.info dnsmasq[1]: x");
        assert_eq!(h.appname, None);
    }

    #[test]
    fn time_only_prefix_and_unbound_thread_tag() {
        let h = decode("14:55:26 dnsmasq[1234]: query[A] a.example from 192.0.2.1");
        assert_eq!(h.appname, Some("dnsmasq"));
        assert_eq!(h.procid, Some("1234"));
        assert_eq!(h.timestamp, None, "a time without a date is not a stamp");
        assert_eq!(h.message, "query[A] a.example from 192.0.2.1");
        // A message that merely starts with a time stays whole.
        let h = decode("14:55:26 nothing tagged here");
        assert_eq!(h.message, "14:55:26 nothing tagged here");
        let h = decode("Dec 02 14:55:26 unbound[27240:3] info: 127.0.0.1 a.test. A IN");
        assert_eq!(h.appname, Some("unbound"));
        assert_eq!(h.procid, Some("27240"));
        assert_eq!(h.message, "info: 127.0.0.1 a.test. A IN");
    }

    // ---- shared tiny parsers ----

    #[test]
    fn digits_value_reads_decimal() {
        assert_eq!(digits_value("0"), 0);
        assert_eq!(digits_value("191"), 191);
        assert_eq!(digits_value("004"), 4);
    }

    #[test]
    fn ascii_run_bounds_and_non_ascii() {
        assert_eq!(ascii_run(1, 3, is_digit)("12345"), Ok(("45", "123")));
        assert_eq!(ascii_run(0, 2, is_digit)("x"), Ok(("x", "")));
        assert!(ascii_run(2, 3, is_digit)("1x").is_err());
        assert_eq!(
            ascii_run(1, 9, is_print_ascii)("ab\u{e9}c"),
            Ok(("\u{e9}c", "ab"))
        );
        assert!(ascii_run(1, 9, is_print_ascii)("\u{e9}").is_err());
        assert!(ascii_run(1, 9, is_print_ascii)("").is_err());
    }

    #[test]
    fn digits_and_predicates() {
        assert_eq!(digits("0123x"), Ok(("x", "0123")));
        assert!(digits("x1").is_err());
        assert!(is_digit(b'7') && !is_digit(b'a'));
        assert!(is_print_ascii(b'!') && is_print_ascii(b'~'));
        assert!(!is_print_ascii(b' ') && !is_print_ascii(0x7f) && !is_print_ascii(0xc3));
    }

    #[test]
    fn sub_offset_subtracts_east_offset() {
        let local = NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .and_hms_opt(1, 0, 0)
            .unwrap();
        assert_eq!(sub_offset(local, 3600), Some(utc(2026, 1, 1, 0, 0, 0)));
        assert_eq!(sub_offset(local, -3600), Some(utc(2026, 1, 1, 2, 0, 0)));
    }

    #[test]
    fn sp_is_one_space() {
        assert_eq!(sp(" x"), Ok(("x", ' ')));
        assert!(sp("x").is_err());
        assert!(sp("").is_err());
    }

    #[test]
    fn fixed_digits_takes_exactly_n() {
        assert_eq!(fixed_digits(2)("123"), Ok(("3", 12)));
        assert!(fixed_digits(2)("1a").is_err());
        assert!(fixed_digits(4)("202").is_err());
    }

    #[test]
    fn time_of_day_checks_ranges() {
        assert_eq!(time_of_day("01:02:03 x"), Ok((" x", (1, 2, 3))));
        assert_eq!(time_of_day("23:59:60"), Ok(("", (23, 59, 60))));
        assert!(time_of_day("24:00:00").is_err());
        assert!(time_of_day("00:60:00").is_err());
        assert!(time_of_day("1:02:03").is_err());
    }

    #[test]
    fn naive_time_handles_leap_second() {
        assert_eq!(
            naive_time(1, 2, 3, 4),
            NaiveTime::from_hms_micro_opt(1, 2, 3, 4)
        );
        assert!(naive_time(23, 59, 60, 0).is_some());
        assert!(naive_time(23, 59, 61, 0).is_none());
    }

    #[test]
    fn pri_accepts_0_to_191() {
        assert_eq!(pri("<0>x"), Ok(("x", 0)));
        assert_eq!(pri("<13>1"), Ok(("1", 13)));
        assert_eq!(pri("<191>"), Ok(("", 191)));
        assert!(pri("<192>x").is_err());
        assert!(pri("<999>x").is_err());
        assert!(pri("<1234>x").is_err());
        assert!(pri("<>x").is_err());
        assert!(pri("<a>x").is_err());
        assert!(pri("<13").is_err());
        assert!(pri("13>").is_err());
    }

    #[test]
    fn pri_like_flags_pri_attempts() {
        assert!(pri_like("<999>x").is_ok());
        assert!(pri_like("<abc>x").is_ok());
        assert!(pri_like("<13 x").is_ok());
        assert!(pri_like("<>").is_ok());
        assert!(pri_like("< html>").is_err());
        assert!(pri_like("hello").is_err());
        assert!(pri_like("<").is_err());
    }

    #[test]
    fn strip_bom_removes_only_a_leading_bom() {
        assert_eq!(strip_bom("\u{FEFF}hi"), "hi");
        assert_eq!(strip_bom("hi\u{FEFF}"), "hi\u{FEFF}");
        assert_eq!(strip_bom(""), "");
    }

    // ---- RFC 3339 ----

    #[test]
    fn full_date_validates_calendar() {
        assert_eq!(
            full_date("2026-11-28T"),
            Ok(("T", NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()))
        );
        assert!(full_date("2026-02-29").is_err());
        assert!(full_date("2024-02-29").is_ok());
        assert!(full_date("2026-13-01").is_err());
        assert!(full_date("26-11-28").is_err());
    }

    #[test]
    fn local_datetime_stamp_and_inline_priority() {
        let mut d = utc_decoder();
        let h = d.decode_at("2025-10-25 21:07:40.531 query[HTTPS] x from ::1", now());
        assert_eq!(
            h.timestamp,
            Some(utc(2025, 10, 25, 21, 7, 40) + TimeDelta::milliseconds(531))
        );
        assert_eq!(h.message, "query[HTTPS] x from ::1");
        let h = d.decode_at(
            "Jun 20 18:33:53 fritz daemon.info dnsmasq[2886]: validation result is INSECURE",
            now(),
        );
        assert_eq!(h.hostname, Some("fritz"));
        assert_eq!(h.appname, Some("dnsmasq"));
        assert_eq!(h.priority, Some(30));
        assert_eq!(h.message, "validation result is INSECURE");
        assert!(facility_severity("nope.info").is_err());
        assert!(facility_severity("daemon.loud").is_err());
    }

    #[test]
    fn fraction_scales_and_truncates_to_micros() {
        assert_eq!(fraction(".1Z"), Ok(("Z", 100_000)));
        assert_eq!(fraction(".123"), Ok(("", 123_000)));
        assert_eq!(fraction(".123456"), Ok(("", 123_456)));
        assert_eq!(fraction(".123456789+"), Ok(("+", 123_456)));
        assert!(fraction(".").is_err());
        assert!(fraction("123").is_err());
    }

    #[test]
    fn utc_offset_forms() {
        assert_eq!(utc_offset("Z"), Ok(("", 0)));
        assert_eq!(utc_offset("z "), Ok((" ", 0)));
        assert_eq!(utc_offset("+05:30"), Ok(("", 19_800)));
        assert_eq!(utc_offset("-08:00"), Ok(("", -28_800)));
        assert!(utc_offset("+0530").is_err());
        assert!(utc_offset("+24:00").is_err());
        assert!(utc_offset("").is_err());
    }

    #[test]
    fn rfc3339_converts_to_utc() {
        assert_eq!(
            rfc3339("2026-11-28T01:02:03Z x"),
            Ok((" x", utc(2026, 11, 28, 1, 2, 3)))
        );
        let (_, t) = rfc3339("2026-11-28T01:02:03.123456+00:00").unwrap();
        assert_eq!(
            t,
            utc(2026, 11, 28, 1, 2, 3) + TimeDelta::microseconds(123_456)
        );
        let (_, t) = rfc3339("2026-11-28T06:32:03.5+05:30").unwrap();
        assert_eq!(t, utc(2026, 11, 28, 1, 2, 3) + TimeDelta::milliseconds(500));
        let (_, t) = rfc3339("2026-01-01T00:30:00-01:00").unwrap();
        assert_eq!(t, utc(2026, 1, 1, 1, 30, 0));
        assert!(rfc3339("2026-11-28T01:02:03").is_err());
        assert!(rfc3339("2026-11-28 01:02:03Z").is_err());
    }

    // ---- RFC 5424 ----

    #[test]
    fn version_is_nonzero_number() {
        assert_eq!(version("1 x"), Ok((" x", "1")));
        assert_eq!(version("12 "), Ok((" ", "12")));
        assert!(version("0 ").is_err());
        assert!(version("x").is_err());
    }

    #[test]
    fn nil_or_timestamp_reads_nil_or_stamp() {
        assert_eq!(nil_or_timestamp("- x"), Ok((" x", None)));
        assert_eq!(
            nil_or_timestamp("2026-11-28T01:02:03Z "),
            Ok((" ", Some(utc(2026, 11, 28, 1, 2, 3))))
        );
        assert!(nil_or_timestamp("Nov").is_err());
    }

    #[test]
    fn nil_or_field_limits_and_nil() {
        assert_eq!(nil_or_field(48)("- x"), Ok((" x", None)));
        assert_eq!(nil_or_field(48)("root x"), Ok((" x", Some("root"))));
        assert_eq!(nil_or_field(48)("-x y"), Ok((" y", Some("-x"))));
        assert_eq!(nil_or_field(3)("abcd"), Ok(("d", Some("abc"))));
        assert!(nil_or_field(48)(" x").is_err());
    }

    #[test]
    fn sd_name_stops_at_specials() {
        assert_eq!(sd_name("timeQuality "), Ok((" ", "timeQuality")));
        assert_eq!(sd_name("a@1=\""), Ok(("=\"", "a@1")));
        assert_eq!(sd_name("id]"), Ok(("]", "id")));
        assert!(sd_name("=x").is_err());
        assert!(sd_name(&"x".repeat(33)).is_ok_and(|(r, n)| r == "x" && n.len() == 32));
    }

    #[test]
    fn sd_value_borrows_unless_escaped() {
        let (rest, v) = sd_value("plain\" x").unwrap();
        assert_eq!(rest, "\" x");
        assert!(matches!(v, Cow::Borrowed("plain")));
        let (rest, v) = sd_value(r#"a\"b\\c\]d\e"]"#).unwrap();
        assert_eq!(rest, "\"]");
        assert!(matches!(&v, Cow::Owned(s) if s == r#"a"b\c]d\e"#));
        let (_, v) = sd_value("caf\u{e9}]\"").unwrap();
        assert_eq!(v, "caf\u{e9}]");
        assert!(sd_value("unterminated").is_err());
        assert!(sd_value(r#"esc\""#).is_err());
    }

    #[test]
    fn unescape_sd_keeps_unknown_escapes() {
        assert_eq!(unescape_sd(r#"\"\\\]"#), r#""\]"#);
        assert_eq!(unescape_sd(r"\n\"), r"\n\");
    }

    #[test]
    fn sd_param_reads_name_and_value() {
        let (rest, (n, v)) = sd_param("tzKnown=\"1\" x").unwrap();
        assert_eq!((rest, n, v.as_ref()), (" x", "tzKnown", "1"));
        let (_, (_, v)) = sd_param("e=\"\"").unwrap();
        assert_eq!(v, "");
        assert!(sd_param("a=1").is_err());
    }

    #[test]
    fn sd_element_with_and_without_params() {
        let (rest, e) = sd_element("[id a=\"1\" b=\"2\"] x").unwrap();
        assert_eq!(rest, " x");
        assert_eq!(e.id, "id");
        assert_eq!(e.params.len(), 2);
        assert_eq!((e.params[1].0, e.params[1].1.as_ref()), ("b", "2"));
        let (_, e) = sd_element("[bare]").unwrap();
        assert_eq!(
            e,
            SdElement {
                id: "bare",
                params: vec![]
            }
        );
        assert!(sd_element("[id a=\"1\"").is_err());
        assert!(sd_element("[id  a=\"1\"]").is_err());
    }

    #[test]
    fn structured_data_nil_or_elements() {
        let (rest, sd) = structured_data("- msg").unwrap();
        assert_eq!(rest, " msg");
        assert!(sd.is_empty());
        assert_eq!(sd.capacity(), 0);
        let (rest, sd) = structured_data("[a][b x=\"y\"] msg").unwrap();
        assert_eq!(rest, " msg");
        assert_eq!(sd.iter().map(|e| e.id).collect::<Vec<_>>(), ["a", "b"]);
        assert!(structured_data("msg").is_err());
    }

    #[test]
    fn msg_5424_strips_space_and_bom() {
        assert_eq!(msg_5424(""), Ok(("", "")));
        assert_eq!(msg_5424(" hello"), Ok(("", "hello")));
        assert_eq!(msg_5424(" \u{FEFF}hello"), Ok(("", "hello")));
        assert_eq!(msg_5424("  two"), Ok(("", " two")));
        assert!(msg_5424("x").is_err());
    }

    #[test]
    fn rfc5424_reads_all_fields() {
        let (_, p) = rfc5424("1 2026-11-28T01:02:03Z h app 12 ID47 - m").unwrap();
        assert_eq!(p.version, "1");
        assert_eq!(p.timestamp, Some(utc(2026, 11, 28, 1, 2, 3)));
        assert_eq!(
            (p.hostname, p.appname, p.procid, p.msgid, p.message),
            (Some("h"), Some("app"), Some("12"), Some("ID47"), "m")
        );
        assert!(rfc5424("Nov 28 01:02:03 h app: m").is_err());
        assert!(rfc5424("1 2026-11-28T01:02:03Z h app 12 ID47").is_err());
        assert!(rfc5424("1 - - - - - [x]y").is_err());
    }

    // ---- RFC 3164 ----

    #[test]
    fn month_abbr_all_months() {
        let months = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        for (n, m) in months.iter().enumerate() {
            assert_eq!(month_abbr(m), Ok(("", n as u32 + 1)));
        }
        assert!(month_abbr("jan").is_err());
        assert!(month_abbr("Ja").is_err());
        assert!(month_abbr("Foo").is_err());
    }

    #[test]
    fn bsd_day_padding_forms() {
        assert_eq!(bsd_day(" 8 "), Ok((" ", 8)));
        assert_eq!(bsd_day("08 "), Ok((" ", 8)));
        assert_eq!(bsd_day("8 "), Ok((" ", 8)));
        assert_eq!(bsd_day("28 "), Ok((" ", 28)));
        assert!(bsd_day("0 ").is_err());
        assert!(bsd_day("32 ").is_err());
        assert!(bsd_day("x").is_err());
    }

    #[test]
    fn bsd_stamp_reads_fields() {
        let s = BsdStamp {
            month: 1,
            day: 8,
            hour: 3,
            minute: 4,
            second: 5,
        };
        assert_eq!(bsd_stamp("Jan  8 03:04:05 x"), Ok((" x", s)));
        assert_eq!(bsd_stamp("Jan 08 03:04:05"), Ok(("", s)));
        assert_eq!(bsd_stamp("Jan 8 03:04:05"), Ok(("", s)));
        assert!(bsd_stamp("Jan   8 03:04:05").is_err());
        assert!(bsd_stamp("Jan 8 3:04:05").is_err());
    }

    #[test]
    fn bsd_stamp_key_is_unique_and_hour_prefixed() {
        let a = BsdStamp {
            month: 12,
            day: 31,
            hour: 23,
            minute: 59,
            second: 60,
        };
        let b = BsdStamp { second: 59, ..a };
        let c = BsdStamp { minute: 0, ..a };
        assert_ne!(a.key(), b.key());
        assert_eq!(a.key() >> 12, c.key() >> 12);
        assert_ne!(a.key(), EMPTY);
    }

    #[test]
    fn stamp_3164_either_form() {
        assert!(matches!(
            stamp_3164("Nov 28 01:02:03"),
            Ok(("", Stamp::Bsd(_)))
        ));
        assert_eq!(
            stamp_3164("2026-11-28T01:02:03.123+01:00 h"),
            Ok((
                " h",
                Stamp::Absolute(
                    utc(2026, 11, 28, 0, 2, 3) + TimeDelta::milliseconds(123),
                    Some(3600)
                )
            ))
        );
        assert!(stamp_3164("query[A]").is_err());
    }

    #[test]
    fn tag_name_chars() {
        assert_eq!(tag_name("dnsmasq-dhcp[5]"), Ok(("[5]", "dnsmasq-dhcp")));
        assert_eq!(tag_name("pihole-FTL:"), Ok((":", "pihole-FTL")));
        assert_eq!(tag_name("a.b_c/d:"), Ok((":", "a.b_c/d")));
        assert!(tag_name(":").is_err());
    }

    #[test]
    fn pid_is_bracketed_digits() {
        assert_eq!(pid("[1234]:"), Ok((":", "1234")));
        assert!(pid("[]").is_err());
        assert!(pid("[12a]").is_err());
        assert_eq!(pid("[27240:3]"), Ok(("", "27240")));
    }

    #[test]
    fn tag_with_pid_eats_spaces() {
        assert_eq!(
            tag_with_pid("dnsmasq[1]: msg"),
            Ok(("msg", ("dnsmasq", Some("1"))))
        );
        assert_eq!(tag_with_pid("a[1]:msg"), Ok(("msg", ("a", Some("1")))));
        assert_eq!(tag_with_pid("a[1]:   msg"), Ok(("msg", ("a", Some("1")))));
        assert_eq!(tag_with_pid("a[1]:"), Ok(("", ("a", Some("1")))));
        assert!(tag_with_pid("a: msg").is_err());
        assert!(tag_with_pid("a[1] msg").is_err());
    }

    #[test]
    fn tag_plain_must_end_a_word() {
        assert_eq!(tag_plain("root: hello"), Ok(("hello", ("root", None))));
        assert_eq!(tag_plain("root:"), Ok(("", ("root", None))));
        assert!(tag_plain("fe80::1 x").is_err());
        assert!(tag_plain("root:x").is_err());
        assert!(tag_plain("root hello").is_err());
    }

    #[test]
    fn syslog_tag_either_form() {
        assert_eq!(syslog_tag("x[2]: m"), Ok(("m", ("x", Some("2")))));
        assert_eq!(syslog_tag("x: m"), Ok(("m", ("x", None))));
        assert!(syslog_tag("pihole dnsmasq[1]: m").is_err());
    }

    #[test]
    fn hostname_is_a_word_not_ending_in_colon() {
        assert_eq!(hostname("pihole x"), Ok((" x", "pihole")));
        assert_eq!(hostname("fe80::1 x"), Ok((" x", "fe80::1")));
        assert!(hostname("root: x").is_err());
        assert!(hostname(" x").is_err());
    }

    #[test]
    fn host_tag_message_decides_conservatively() {
        assert_eq!(
            host_tag_message("dnsmasq[1]: m"),
            (None, None, Some(("dnsmasq", Some("1"))), "m")
        );
        assert_eq!(
            host_tag_message("pihole dnsmasq[1]: m"),
            (Some("pihole"), None, Some(("dnsmasq", Some("1"))), "m")
        );
        assert_eq!(
            host_tag_message("myhost root: hello"),
            (Some("myhost"), None, Some(("root", None)), "hello")
        );
        assert_eq!(
            host_tag_message("myhost hello world"),
            (None, None, None, "myhost hello world")
        );
        assert_eq!(
            host_tag_message("bad(tag): x"),
            (None, None, None, "bad(tag): x")
        );
        assert_eq!(host_tag_message(""), (None, None, None, ""));
    }

    #[test]
    fn rfc3164_requires_separator_after_stamp() {
        let (_, b) = rfc3164("Nov 28 01:02:03 h t: m").unwrap();
        assert_eq!(
            (b.hostname, b.tag, b.message),
            (Some("h"), Some(("t", None)), "m")
        );
        let (_, b) = rfc3164("Nov 28 01:02:03").unwrap();
        assert_eq!(b.message, "");
        assert!(rfc3164("Nov 28 01:02:03x").is_err());
        assert!(rfc3164("hello").is_err());
    }

    // ---- facility, severity, zone ----

    #[test]
    fn facility_and_severity_names() {
        assert_eq!(facility_name(0), "kern");
        assert_eq!(facility_name(3), "daemon");
        assert_eq!(facility_name(10), "authpriv");
        assert_eq!(facility_name(15), "solaris-cron");
        assert_eq!(facility_name(16), "local0");
        assert_eq!(facility_name(23), "local7");
        assert_eq!(facility_name(24), "unknown");
        assert_eq!(severity_name(0), "emerg");
        assert_eq!(severity_name(4), "warning");
        assert_eq!(severity_name(7), "debug");
        assert_eq!(severity_name(8), "unknown");
    }

    #[test]
    fn header_facility_and_severity() {
        let h = decode("<30>Nov 28 01:02:03 dnsmasq[1]: x");
        assert_eq!((h.facility(), h.severity()), (Some(3), Some(6)));
        let h = decode("<191>Nov 28 01:02:03 dnsmasq[1]: x");
        assert_eq!((h.facility(), h.severity()), (Some(23), Some(7)));
        assert_eq!(Header::bare("x").facility(), None);
        assert_eq!(Header::bare("x").severity(), None);
    }

    #[test]
    fn fixed_offset_forms() {
        assert_eq!(fixed_offset("+02:00"), Ok(("", 7_200)));
        assert_eq!(fixed_offset("-0530"), Ok(("", -19_800)));
        assert_eq!(fixed_offset("+2"), Ok(("", 7_200)));
        assert_eq!(fixed_offset("-11"), Ok(("", -39_600)));
        assert!(fixed_offset("+24").is_err());
        assert!(fixed_offset("+02:60").is_err());
        assert!(fixed_offset("2").is_err());
    }

    #[test]
    fn zone_from_str_forms() {
        let utc0 = Zone::Fixed(FixedOffset::east_opt(0).unwrap());
        assert_eq!("local".parse::<Zone>(), Ok(Zone::Local));
        assert_eq!("LOCAL".parse::<Zone>(), Ok(Zone::Local));
        assert_eq!("UTC".parse::<Zone>(), Ok(utc0.clone()));
        assert_eq!("utc".parse::<Zone>(), Ok(utc0.clone()));
        assert_eq!("Z".parse::<Zone>(), Ok(utc0));
        assert_eq!("Europe/Berlin".parse::<Zone>(), Ok(Zone::Named(Berlin)));
        assert_eq!(
            "+02:00".parse::<Zone>(),
            Ok(Zone::Fixed(FixedOffset::east_opt(7_200).unwrap()))
        );
        assert_eq!(
            "-0530".parse::<Zone>(),
            Ok(Zone::Fixed(FixedOffset::west_opt(19_800).unwrap()))
        );
        assert_eq!(
            "+2".parse::<Zone>(),
            Ok(Zone::Fixed(FixedOffset::east_opt(7_200).unwrap()))
        );
        for bad in ["Mars/Olympus", "+25", "+02:00x", ""] {
            let err = bad.parse::<Zone>().unwrap_err();
            assert!(
                err.contains("Europe/Berlin") && err.contains("+02:00"),
                "{err}"
            );
            assert!(err.contains("local") && err.contains("UTC"), "{err}");
        }
    }

    #[test]
    fn zone_local_to_utc_gap_and_overlap() {
        let z = Zone::Named(Berlin);
        let at = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        // Spring gap: 02:30 does not exist, read as 03:30 CEST.
        assert_eq!(
            z.local_to_utc(at("2026-03-29 02:30:00")),
            Some(utc(2026, 3, 29, 1, 30, 0))
        );
        // Autumn overlap: 02:30 happens twice, the earliest is CEST.
        assert_eq!(
            z.local_to_utc(at("2026-10-25 02:30:00")),
            Some(utc(2026, 10, 25, 0, 30, 0))
        );
        assert_eq!(
            z.local_to_utc(at("2026-07-01 12:00:00")),
            Some(utc(2026, 7, 1, 10, 0, 0))
        );
    }

    #[test]
    fn earliest_offset_prefers_earlier_instant() {
        assert_eq!(earliest_offset(LocalResult::Single(5)), Some(5));
        assert_eq!(
            earliest_offset(LocalResult::Ambiguous(3600, 7200)),
            Some(7200)
        );
        assert_eq!(earliest_offset(LocalResult::None), None);
    }

    #[test]
    fn zone_year_at_uses_the_zone() {
        let new_year_berlin = utc(2026, 12, 31, 23, 30, 0);
        assert_eq!(Zone::Named(Berlin).year_at(new_year_berlin), 2027);
        assert_eq!(
            "UTC".parse::<Zone>().unwrap().year_at(new_year_berlin),
            2026
        );
        assert_eq!(
            "-05:00"
                .parse::<Zone>()
                .unwrap()
                .year_at(utc(2027, 1, 1, 2, 0, 0)),
            2026
        );
    }

    // ---- whole lines: RFC 5424 ----

    #[test]
    fn logger_rfc5424_line() {
        let line = "<13>1 2026-11-28T01:02:03.123456+00:00 myhost root - - \
                    [timeQuality tzKnown=\"1\" isSynced=\"1\" syncAccuracy=\"123\"] hello";
        let h = decode(line);
        assert_eq!(h.format, Format::Rfc5424);
        assert_eq!(h.priority, Some(13));
        assert_eq!(h.version, Some("1"));
        assert_eq!(
            h.timestamp,
            Some(utc(2026, 11, 28, 1, 2, 3) + TimeDelta::microseconds(123_456))
        );
        assert_eq!(h.hostname, Some("myhost"));
        assert_eq!(h.appname, Some("root"));
        assert_eq!((h.procid, h.msgid), (None, None));
        assert_eq!(h.structured_data.len(), 1);
        let sd = &h.structured_data[0];
        assert_eq!(sd.id, "timeQuality");
        let params: Vec<_> = sd.params.iter().map(|(k, v)| (*k, v.as_ref())).collect();
        assert_eq!(
            params,
            [("tzKnown", "1"), ("isSynced", "1"), ("syncAccuracy", "123")]
        );
        assert!(!h.header_invalid);
        assert_eq!(h.message, "hello");
    }

    #[test]
    fn rfc5424_several_sd_elements_with_escapes() {
        let line = r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 8710 ID47 [exampleSDID@32473 iut="3" eventSource="App\"lic\\ation\]" eventID="1011"][examplePriority@32473 class="high"] BOMAn application event"#;
        let h = decode(line);
        assert_eq!(h.format, Format::Rfc5424);
        assert_eq!((h.procid, h.msgid), (Some("8710"), Some("ID47")));
        assert_eq!(h.structured_data.len(), 2);
        let first = &h.structured_data[0];
        assert_eq!(first.id, "exampleSDID@32473");
        assert!(matches!(first.params[0].1, Cow::Borrowed("3")));
        assert!(matches!(&first.params[1].1, Cow::Owned(s) if s == r#"App"lic\ation]"#));
        assert_eq!(h.structured_data[1].id, "examplePriority@32473");
        assert_eq!(h.structured_data[1].params[0].1, "high");
        assert_eq!(h.message, "BOMAn application event");
        assert_eq!(
            h.timestamp,
            Some(utc(2003, 10, 11, 22, 14, 15) + TimeDelta::milliseconds(3))
        );
    }

    #[test]
    fn rfc5424_nilvalues_everywhere() {
        let h = decode("<14>1 - - - - - - msg");
        assert_eq!(h.format, Format::Rfc5424);
        assert_eq!(h.priority, Some(14));
        assert_eq!(h.version, Some("1"));
        assert_eq!(h.timestamp, None);
        assert_eq!(
            (h.hostname, h.appname, h.procid, h.msgid),
            (None, None, None, None)
        );
        assert!(h.structured_data.is_empty());
        assert_eq!(h.message, "msg");
        let h = decode("<14>1 - - - - - -");
        assert_eq!(
            (h.format, h.message, h.header_invalid),
            (Format::Rfc5424, "", false)
        );
    }

    #[test]
    fn rfc5424_bom_is_stripped() {
        let h = decode("<14>1 - host app - - - \u{FEFF}query[A] example.com from 10.0.0.1");
        assert_eq!(h.message, "query[A] example.com from 10.0.0.1");
    }

    #[test]
    fn rfc5424_offsets_and_fractions() {
        let h = decode("<30>1 2026-11-28T06:32:03.1234567+05:30 pihole dnsmasq 42 - - q");
        assert_eq!(
            h.timestamp,
            Some(utc(2026, 11, 28, 1, 2, 3) + TimeDelta::microseconds(123_456))
        );
        assert_eq!((h.appname, h.procid), (Some("dnsmasq"), Some("42")));
        let h = decode("<30>1 2026-11-27T20:02:03-05:00 h a - - - q");
        assert_eq!(h.timestamp, Some(utc(2026, 11, 28, 1, 2, 3)));
    }

    // ---- whole lines: RFC 3164 ----

    #[test]
    fn dnsmasq_file_line_space_padded_day() {
        let line = "Jan  8 03:04:05 dnsmasq[123]: query[A] example.com from 10.0.0.1";
        let h = utc_decoder().decode_at(line, utc(2026, 1, 8, 3, 5, 0));
        assert_eq!(h.format, Format::Rfc3164);
        assert_eq!(h.priority, None);
        assert_eq!(h.timestamp, Some(utc(2026, 1, 8, 3, 4, 5)));
        assert_eq!(h.hostname, None);
        assert_eq!((h.appname, h.procid), (Some("dnsmasq"), Some("123")));
        assert_eq!(h.message, "query[A] example.com from 10.0.0.1");
        assert!(!h.header_invalid);
    }

    #[test]
    fn dnsmasq_syslog_line_without_hostname() {
        let h = decode("<30>Nov 28 01:02:03 dnsmasq[1234]: query[A] x from y");
        assert_eq!(h.format, Format::Rfc3164);
        assert_eq!(h.priority, Some(30));
        assert_eq!(h.timestamp, Some(utc(2026, 11, 28, 1, 2, 3)));
        assert_eq!(h.hostname, None);
        assert_eq!((h.appname, h.procid), (Some("dnsmasq"), Some("1234")));
        assert_eq!(h.message, "query[A] x from y");
    }

    #[test]
    fn rsyslog_forwarded_line_with_hostname() {
        let h = decode("<30>Nov 28 01:02:03 pihole dnsmasq[1234]: reply x is 1.2.3.4\r");
        assert_eq!(h.hostname, Some("pihole"));
        assert_eq!((h.appname, h.procid), (Some("dnsmasq"), Some("1234")));
        assert_eq!(h.message, "reply x is 1.2.3.4");
    }

    #[test]
    fn logger_rfc3164_line() {
        let h = decode("<13>Nov 28 01:02:03 myhost root: hello");
        assert_eq!(h.format, Format::Rfc3164);
        assert_eq!(h.priority, Some(13));
        assert_eq!(h.hostname, Some("myhost"));
        assert_eq!((h.appname, h.procid), (Some("root"), None));
        assert_eq!(h.message, "hello");
        assert_eq!(h.version, None);
    }

    #[test]
    fn rfc3164_with_rfc3339_stamp() {
        let h = decode("<30>2026-11-28T01:02:03.123+01:00 host dnsmasq[12]: msg");
        assert_eq!(h.format, Format::Rfc3164);
        assert_eq!(
            h.timestamp,
            Some(utc(2026, 11, 28, 0, 2, 3) + TimeDelta::milliseconds(123))
        );
        assert_eq!(h.hostname, Some("host"));
        assert_eq!(
            (h.appname, h.procid, h.message),
            (Some("dnsmasq"), Some("12"), "msg")
        );
    }

    #[test]
    fn rfc3164_with_iso_stamp_without_offset_is_local_time() {
        // syslog-ng's loggen writes this header.
        let mut d = utc_decoder();
        let h = d.decode_at(
            "<38>2026-11-28T01:52:43 localhost prg00000[1234]: seq: 1",
            now(),
        );
        assert_eq!(h.format, Format::Rfc3164);
        assert_eq!(h.timestamp, Some(utc(2026, 11, 28, 1, 52, 43)));
        assert_eq!(
            (h.hostname, h.appname, h.procid, h.message),
            (Some("localhost"), Some("prg00000"), Some("1234"), "seq: 1")
        );
        assert!(!h.header_invalid);
        let mut berlin = SyslogDecoder::new("Europe/Berlin".parse().unwrap());
        let h = berlin.decode_at("<30>2026-11-28T01:02:03.5 host dnsmasq[1]: m", now());
        assert_eq!(
            h.timestamp,
            Some(utc(2026, 11, 28, 0, 2, 3) + TimeDelta::milliseconds(500))
        );
    }

    #[test]
    fn rfc3164_tag_without_pid_and_dashed_tags() {
        let h = decode("Nov 28 01:02:03 kernel: boot");
        assert_eq!(
            (h.hostname, h.appname, h.procid),
            (None, Some("kernel"), None)
        );
        assert_eq!(h.message, "boot");
        let h = decode("<30>Nov 28 01:02:03 dnsmasq-dhcp[5]: DHCPACK(eth0) 10.0.0.2");
        assert_eq!((h.appname, h.procid), (Some("dnsmasq-dhcp"), Some("5")));
        assert_eq!(h.message, "DHCPACK(eth0) 10.0.0.2");
        let h = decode("Nov 28 01:02:03 pi.hole pihole-FTL[99]:  two spaces");
        assert_eq!(h.hostname, Some("pi.hole"));
        assert_eq!(h.appname, Some("pihole-FTL"));
        assert_eq!(h.message, "two spaces");
    }

    #[test]
    fn rfc3164_without_tag_keeps_whole_rest() {
        let h = decode("<13>Nov 28 01:02:03 myhost hello world");
        assert_eq!(h.format, Format::Rfc3164);
        assert_eq!((h.hostname, h.appname), (None, None));
        assert_eq!(h.message, "myhost hello world");
        assert!(!h.header_invalid);
        let h = decode("<13>Nov  8 01:02:03 fe80::1 dnsmasq[3]: x");
        assert_eq!(h.hostname, Some("fe80::1"));
        assert_eq!(h.appname, Some("dnsmasq"));
    }

    // ---- whole lines: bare and malformed ----

    #[test]
    fn bare_message() {
        let h = decode("query[A] example.com from 10.0.0.1");
        assert_eq!(h, Header::bare("query[A] example.com from 10.0.0.1"));
        assert_eq!(h.format, Format::Bare);
        let h = decode("root: not a tag without a stamp");
        assert_eq!(h.appname, None);
        assert_eq!(h.message, "root: not a tag without a stamp");
    }

    #[test]
    fn bare_message_with_tag() {
        let h = decode("dnsmasq[1]: msg");
        assert_eq!(h.format, Format::Bare);
        assert_eq!((h.appname, h.procid), (Some("dnsmasq"), Some("1")));
        assert_eq!(h.message, "msg");
        assert!(!h.header_invalid);
    }

    #[test]
    fn malformed_header_keeps_priority_and_text() {
        let h = decode("<13>garbage");
        assert_eq!(h.format, Format::Bare);
        assert_eq!(h.priority, Some(13));
        assert!(h.header_invalid);
        assert_eq!(h.message, "garbage");
        let h = decode("<13>1 2026-11-28T01:02:03Z host");
        assert!(h.header_invalid);
        assert_eq!(h.message, "1 2026-11-28T01:02:03Z host");
        let h = decode("<13>");
        assert_eq!(
            (h.priority, h.header_invalid, h.message),
            (Some(13), true, "")
        );
    }

    #[test]
    fn out_of_range_or_non_numeric_pri_is_bare_invalid() {
        for line in ["<999>x", "<192>Nov 28 01:02:03 a: b", "<abc>x", "<13 x"] {
            let h = decode(line);
            assert_eq!(h.format, Format::Bare, "{line}");
            assert_eq!(h.priority, None, "{line}");
            assert!(h.header_invalid, "{line}");
            assert_eq!(h.message, line);
        }
    }

    #[test]
    fn empty_and_cr_only_lines() {
        assert_eq!(decode(""), Header::bare(""));
        assert_eq!(decode("\r"), Header::bare(""));
        assert_eq!(decode("x\r").message, "x");
    }

    // ---- year and zone inference, cache ----

    #[test]
    fn year_is_that_of_now() {
        let mut d = utc_decoder();
        let h = d.decode_at("Jun 15 10:00:00 a: b", utc(2026, 6, 20, 0, 0, 0));
        assert_eq!(h.timestamp, Some(utc(2026, 6, 15, 10, 0, 0)));
        // A little (under two days) in the future stays in this year.
        let h = d.decode_at("Jun 21 10:00:00 a: b", utc(2026, 6, 20, 0, 0, 0));
        assert_eq!(h.timestamp, Some(utc(2026, 6, 21, 10, 0, 0)));
    }

    #[test]
    fn dec_31_line_read_on_jan_1_is_previous_year() {
        let h = utc_decoder().decode_at("Dec 31 23:59:59 a: b", utc(2027, 1, 1, 0, 0, 10));
        assert_eq!(h.timestamp, Some(utc(2026, 12, 31, 23, 59, 59)));
    }

    #[test]
    fn jan_1_line_read_on_dec_31_is_next_year() {
        let h = utc_decoder().decode_at("Jan  1 00:00:01 a: b", utc(2026, 12, 31, 23, 59, 58));
        assert_eq!(h.timestamp, Some(utc(2027, 1, 1, 0, 0, 1)));
    }

    #[test]
    fn feb_29_in_common_year() {
        let mut d = utc_decoder();
        // 2025: the nearest year with a Feb 29 is 2024.
        let h = d.decode_at("Feb 29 12:00:00 a: b", utc(2025, 1, 5, 0, 0, 0));
        assert_eq!(h.timestamp, Some(utc(2024, 2, 29, 12, 0, 0)));
        // 2026: neither 2025 nor 2027 has one.
        let h = d.decode_at("Feb 29 12:00:00 a: b", utc(2026, 3, 1, 0, 0, 0));
        assert_eq!((h.timestamp, h.message), (None, "b"));
        // Leap year: as usual.
        let h = d.decode_at("Feb 29 12:00:00 a: b", utc(2028, 3, 1, 0, 0, 0));
        assert_eq!(h.timestamp, Some(utc(2028, 2, 29, 12, 0, 0)));
        // Impossible days never resolve.
        let h = d.decode_at("Feb 30 12:00:00 a: b", utc(2028, 3, 1, 0, 0, 0));
        assert_eq!(h.timestamp, None);
    }

    #[test]
    fn named_zone_winter_and_summer() {
        let mut d = berlin();
        let h = d.decode_at("Jan  8 03:04:05 dnsmasq[1]: q", utc(2026, 1, 8, 3, 0, 0));
        assert_eq!(h.timestamp, Some(utc(2026, 1, 8, 2, 4, 5)));
        let h = d.decode_at("Jul  8 03:04:05 dnsmasq[1]: q", utc(2026, 7, 8, 3, 0, 0));
        assert_eq!(h.timestamp, Some(utc(2026, 7, 8, 1, 4, 5)));
        // DST gap and overlap through the whole decoder.
        let h = d.decode_at("Mar 29 02:30:00 a: b", utc(2026, 3, 29, 3, 0, 0));
        assert_eq!(h.timestamp, Some(utc(2026, 3, 29, 1, 30, 0)));
        let h = d.decode_at("Oct 25 02:30:00 a: b", utc(2026, 10, 25, 3, 0, 0));
        assert_eq!(h.timestamp, Some(utc(2026, 10, 25, 0, 30, 0)));
        let h = d.decode_at("Oct 25 02:59:59 a: b", utc(2026, 10, 25, 3, 0, 0));
        assert_eq!(h.timestamp, Some(utc(2026, 10, 25, 0, 59, 59)));
        let h = d.decode_at("Oct 25 03:00:00 a: b", utc(2026, 10, 25, 3, 0, 0));
        assert_eq!(h.timestamp, Some(utc(2026, 10, 25, 2, 0, 0)));
    }

    #[test]
    fn fixed_zones() {
        let mut d = SyslogDecoder::new("+05:30".parse().unwrap());
        let h = d.decode_at("Nov 28 06:32:03 a: b", now());
        assert_eq!(h.timestamp, Some(utc(2026, 11, 28, 1, 2, 3)));
        let mut d = SyslogDecoder::new("-0800".parse().unwrap());
        let h = d.decode_at("Nov 27 17:02:03 a: b", now());
        assert_eq!(h.timestamp, Some(utc(2026, 11, 28, 1, 2, 3)));
        assert_eq!(
            d.zone(),
            &Zone::Fixed(FixedOffset::west_opt(28_800).unwrap())
        );
    }

    #[test]
    fn local_zone_does_not_panic() {
        let mut d = SyslogDecoder::new(Zone::Local);
        let h = d.decode("<30>Nov 28 01:02:03 dnsmasq[1]: q");
        assert!(h.timestamp.is_some());
        assert_eq!(h.message, "q");
    }

    #[test]
    fn stamp_cache_follows_changing_stamps() {
        let mut d = berlin();
        let n = utc(2026, 1, 8, 12, 0, 0);
        let lines = [
            ("Jan  8 03:04:05 a: b", utc(2026, 1, 8, 2, 4, 5)),
            ("Jan  8 03:04:05 a: c", utc(2026, 1, 8, 2, 4, 5)),
            ("Jan  8 03:04:06 a: b", utc(2026, 1, 8, 2, 4, 6)),
            ("Jan  8 04:00:00 a: b", utc(2026, 1, 8, 3, 0, 0)),
            ("Jan  7 04:00:00 a: b", utc(2026, 1, 7, 3, 0, 0)),
            ("Jan  8 03:04:05 a: b", utc(2026, 1, 8, 2, 4, 5)),
            ("Jul  8 03:04:05 a: b", utc(2025, 7, 8, 1, 4, 5)),
            ("Jan  8 03:04:05 a: b", utc(2026, 1, 8, 2, 4, 5)),
        ];
        for (line, want) in lines {
            assert_eq!(d.decode_at(line, n).timestamp, Some(want), "{line}");
        }
        // The same stamp read a year later is not served from the cache.
        let later = d.decode_at("Jan  8 03:04:05 a: b", utc(2027, 1, 8, 12, 0, 0));
        assert_eq!(later.timestamp, Some(utc(2027, 1, 8, 2, 4, 5)));
        // An RFC 3339 stamp in between does not disturb the cache.
        let h = d.decode_at("2026-01-08T00:00:00Z a: b", n);
        assert_eq!(h.timestamp, Some(utc(2026, 1, 8, 0, 0, 0)));
    }

    #[test]
    fn hour_cache_is_per_hour_and_year() {
        let mut d = berlin();
        // Mar 28 05:00 is still CET in 2026 but already CEST in 2027.
        let h = d.decode_at("Mar 28 05:00:00 a: b", utc(2026, 3, 28, 12, 0, 0));
        assert_eq!(h.timestamp, Some(utc(2026, 3, 28, 4, 0, 0)));
        let h = d.decode_at("Mar 28 05:00:01 a: b", utc(2027, 3, 28, 12, 0, 0));
        assert_eq!(h.timestamp, Some(utc(2027, 3, 28, 3, 0, 1)));
        let h = d.decode_at("Mar 28 05:00:02 a: b", utc(2026, 3, 28, 12, 0, 0));
        assert_eq!(h.timestamp, Some(utc(2026, 3, 28, 4, 0, 2)));
        // The hour after a change is cached on its own offset.
        let h = d.decode_at("Mar 29 03:10:00 a: b", utc(2026, 3, 29, 12, 0, 0));
        assert_eq!(h.timestamp, Some(utc(2026, 3, 29, 1, 10, 0)));
        let h = d.decode_at("Mar 29 03:20:00 a: b", utc(2026, 3, 29, 12, 0, 0));
        assert_eq!(h.timestamp, Some(utc(2026, 3, 29, 1, 20, 0)));
    }

    // ---- robustness ----

    fn check_suffix(line: &str) -> Result<(), TestCaseError> {
        let stripped = line.strip_suffix('\r').unwrap_or(line);
        for zone in [Zone::Named(Berlin), Zone::Local] {
            let h = SyslogDecoder::new(zone).decode_at(line, now());
            prop_assert!(stripped.ends_with(h.message));
            let end = |s: &str| s.as_ptr() as usize + s.len();
            prop_assert_eq!(end(h.message), end(stripped));
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn arbitrary_lines_never_panic(line in any::<String>()) {
            check_suffix(&line)?;
        }

        #[test]
        fn syslog_like_lines_never_panic(
            line in "(<[0-9]{1,3}>)?(1 )?((Jan|Feb|Dec) [ 0-3]?[0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}|[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})|-)? ?([a-z\\-]{1,8}(\\[[0-9]{1,4}\\])?:? ?)*(\\[[a-z]{1,3}( [a-z]=\"[a-z\\\\\\]\"]{0,4}\")*\\])*[ \u{FEFF}a-z\\[\\]:]{0,20}\r?"
        ) {
            check_suffix(&line)?;
        }
    }
}
