//! RELP (the Reliable Event Logging Protocol of rsyslog's librelp) on the
//! server side, without the network: [`RelpDecoder`] splits a connection's
//! bytes into frames, [`RelpSession`] checks them against the session rules
//! and builds the responses, in the order the commands came in.
//!
//! ```text
//!  RELP-FRAME = TXNR SP COMMAND SP DATALEN [SP DATA] LF
//!
//!   "2" SP "syslog" SP "27" SP "<13>Jan  1 00:00:00 h t: m" LF
//!    │      │           │     └ exactly DATALEN bytes, any bytes (LF too)
//!    │      │           └ 1*9 digits; 0 means no SP and no DATA
//!    │      └ 1*32 letters: open, syslog, close (anything else is refused)
//!    └ 1*9 digits, 1 ..= 999,999,999, each command the one before + 1,
//!      after 999,999,999 comes 1; 0 is for hints, which a client never sends
//!
//!  answers:  TXNR SP "rsp" SP DATALEN SP "200 OK" [LF offers] LF
//!  hint:     "0 serverclose 0" LF   (the server closes; never answered)
//! ```
//!
//! Every error is fatal to the session: the spec's rule is that the peer that
//! sees a framing error closes the TCP connection, and "any outstanding
//! commands are considered to have been unsuccessful" — the client resends
//! them on its next connection. So a [`RelpError`] means: stop reading, send
//! no answer still owed, send the `serverclose` hint (as librelp's server does
//! when it drops a session that is not broken at the socket:
//! `relpSessDestruct` → `relpSessSrvDoDisconnect`, `src/relpsess.c`) and
//! close. The decoder refuses further input after one.
//!
//! Facts from librelp (`doc/relp.md`, `src/relp.h`): real librelp speaks
//! `relp_version=0` (the spec's 1 was never used), its default maximum DATA
//! is 128 KiB and its client's window is 128 unanswered commands.

use std::collections::VecDeque;

/// librelp's default maximum DATALEN.
pub const DEFAULT_MAX_DATA: usize = 128 * 1024;
/// The largest transaction number; the next one is 1.
pub const MAX_TXNR: u32 = 999_999_999;
/// librelp's client window (`RELP_DFLT_WINDOW_SIZE`).
pub const LIBRELP_WINDOW: usize = 128;
/// The default bound on unanswered commands: room for clients configured with
/// a window well above librelp's default.
pub const DEFAULT_MAX_UNACKED: usize = 8 * LIBRELP_WINDOW;
/// The `serverclose` hint, sent before the server closes a session itself.
pub const SERVERCLOSE_HINT: &[u8] = b"0 serverclose 0\n";

/// At most 9 digits in TXNR and DATALEN.
const MAX_DIGITS: u8 = 9;
/// At most 32 letters in COMMAND.
const MAX_COMMAND: usize = 32;

/// Why a session must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelpError {
    #[error("RELP: byte {0:?} where the transaction number (digits) should be")]
    BadTxnr(char),
    #[error("RELP: transaction number has more than 9 digits")]
    TxnrTooLong,
    #[error("RELP: transaction number 0 is reserved for hints, which clients do not send")]
    TxnrZero,
    #[error("RELP: transaction number {got} out of order, {expected} expected")]
    TxnrOutOfOrder { expected: u32, got: u32 },
    #[error("RELP: byte {0:?} in the command name (letters only)")]
    BadCommand(char),
    #[error("RELP: command name longer than 32 letters")]
    CommandTooLong,
    #[error("RELP: unknown command {0:?} (this server takes open, syslog, close)")]
    UnknownCommand(String),
    #[error("RELP: byte {0:?} where DATALEN (digits) should be")]
    BadDatalen(char),
    #[error("RELP: DATALEN has more than 9 digits")]
    DatalenTooLong,
    #[error("RELP: DATALEN {len} is over the maximum {max}")]
    DataTooLarge { len: usize, max: usize },
    #[error("RELP: DATALEN {0} but the frame ends after DATALEN")]
    MissingData(usize),
    #[error("RELP: DATALEN 0 must be followed by LF, not a space")]
    SpaceWithoutData,
    #[error("RELP: byte {0:?} after DATA where the LF trailer should be (DATALEN does not match)")]
    MissingTrailer(char),
    #[error("RELP: the connection ended inside a frame")]
    Truncated,
    #[error("RELP: {0} before open")]
    NotOpen(&'static str),
    #[error("RELP: a second open")]
    AlreadyOpen,
    #[error("RELP: {0} after close")]
    AfterClose(&'static str),
    #[error("RELP: open without a relp_version offer")]
    NoVersionOffer,
    #[error("RELP: more than {0} commands unanswered")]
    WindowExceeded(usize),
    #[error("RELP: the session already failed")]
    Failed,
}

/// A command this server takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Open,
    Syslog,
    Close,
}

impl Command {
    fn parse(name: &[u8]) -> Result<Command, RelpError> {
        match name {
            b"open" => Ok(Command::Open),
            b"syslog" => Ok(Command::Syslog),
            b"close" => Ok(Command::Close),
            other => Err(RelpError::UnknownCommand(
                String::from_utf8_lossy(other).into_owned(),
            )),
        }
    }

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Open => "open",
            Command::Syslog => "syslog",
            Command::Close => "close",
        }
    }
}

/// One decoded frame; `data` is borrowed from the decoder until the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub txnr: u32,
    pub command: Command,
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading TXNR: its value and digits so far.
    Txnr { value: u32, digits: u8 },
    /// Reading COMMAND (the letters so far are in `name`).
    Command,
    /// Reading DATALEN.
    Datalen { value: usize, digits: u8 },
    /// Copying DATA: this many bytes still to come.
    Data { left: usize },
    /// Expecting the LF trailer.
    Trailer,
    /// An error was returned; nothing more is read.
    Failed,
}

impl State {
    /// Where the next frame starts.
    const NEXT_FRAME: State = State::Txnr {
        value: 0,
        digits: 0,
    };
}

/// Splits one connection's bytes into RELP frames. Feed it chunks as they are
/// read; a frame may be split across any number of reads.
#[derive(Debug)]
pub struct RelpDecoder {
    max_data: usize,
    state: State,
    txnr: u32,
    name: Vec<u8>,
    command: Option<Command>,
    data: Vec<u8>,
}

impl RelpDecoder {
    /// A decoder refusing DATALEN over `max_data`.
    pub fn new(max_data: usize) -> RelpDecoder {
        RelpDecoder {
            max_data,
            state: State::Txnr {
                value: 0,
                digits: 0,
            },
            txnr: 0,
            name: Vec::with_capacity(MAX_COMMAND),
            command: None,
            data: Vec::new(),
        }
    }

    /// Whether the decoder is between frames (the connection may end here).
    pub fn at_frame_boundary(&self) -> bool {
        self.state
            == State::Txnr {
                value: 0,
                digits: 0,
            }
    }

    /// Consumes `chunk`, calling `out` for every frame it completes. An error
    /// (from the framing or from `out`) ends the session: it is returned, and
    /// every later call returns [`RelpError::Failed`].
    pub fn decode(
        &mut self,
        chunk: &[u8],
        out: &mut impl FnMut(Frame<'_>) -> Result<(), RelpError>,
    ) -> Result<(), RelpError> {
        let r = self.run(chunk, out);
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    /// The stream ended: an error unless it ended between frames.
    pub fn finish(&mut self) -> Result<(), RelpError> {
        match self.state {
            State::Failed => Err(RelpError::Failed),
            _ if self.at_frame_boundary() => Ok(()),
            _ => {
                self.state = State::Failed;
                Err(RelpError::Truncated)
            }
        }
    }

    fn run(
        &mut self,
        mut chunk: &[u8],
        out: &mut impl FnMut(Frame<'_>) -> Result<(), RelpError>,
    ) -> Result<(), RelpError> {
        while let Some(&b) = chunk.first() {
            self.state = match self.state {
                State::Failed => return Err(RelpError::Failed),
                State::Txnr { value, digits } => self.txnr_byte(b, value, digits)?,
                State::Command => self.command_byte(b)?,
                State::Datalen { value, digits } => self.datalen_byte(b, value, digits, out)?,
                State::Data { left } => {
                    let take = left.min(chunk.len());
                    self.data.extend_from_slice(&chunk[..take]);
                    chunk = &chunk[take..];
                    self.state = match left - take {
                        0 => State::Trailer,
                        left => State::Data { left },
                    };
                    continue;
                }
                State::Trailer => {
                    if b != b'\n' {
                        return Err(RelpError::MissingTrailer(char::from(b)));
                    }
                    self.emit(out)?;
                    State::NEXT_FRAME
                }
            };
            chunk = &chunk[1..];
        }
        Ok(())
    }

    /// One byte of `TXNR SP`.
    fn txnr_byte(&mut self, b: u8, value: u32, digits: u8) -> Result<State, RelpError> {
        Ok(match b {
            b'0'..=b'9' if digits == MAX_DIGITS => return Err(RelpError::TxnrTooLong),
            b'0'..=b'9' => State::Txnr {
                value: value * 10 + u32::from(b - b'0'),
                digits: digits + 1,
            },
            b' ' if digits > 0 => {
                if value == 0 {
                    return Err(RelpError::TxnrZero);
                }
                self.txnr = value;
                self.name.clear();
                State::Command
            }
            _ => return Err(RelpError::BadTxnr(char::from(b))),
        })
    }

    /// One byte of `COMMAND SP`.
    fn command_byte(&mut self, b: u8) -> Result<State, RelpError> {
        Ok(match b {
            b'a'..=b'z' | b'A'..=b'Z' if self.name.len() == MAX_COMMAND => {
                return Err(RelpError::CommandTooLong)
            }
            b'a'..=b'z' | b'A'..=b'Z' => {
                self.name.push(b);
                State::Command
            }
            b' ' if !self.name.is_empty() => {
                // Refused now, before its data is read.
                self.command = Some(Command::parse(&self.name)?);
                State::Datalen {
                    value: 0,
                    digits: 0,
                }
            }
            _ => return Err(RelpError::BadCommand(char::from(b))),
        })
    }

    /// One byte of `DATALEN` and what follows it: `SP` before data, or the
    /// trailer of a frame without data.
    fn datalen_byte(
        &mut self,
        b: u8,
        value: usize,
        digits: u8,
        out: &mut impl FnMut(Frame<'_>) -> Result<(), RelpError>,
    ) -> Result<State, RelpError> {
        Ok(match b {
            b'0'..=b'9' if digits == MAX_DIGITS => return Err(RelpError::DatalenTooLong),
            b'0'..=b'9' => {
                let value = value * 10 + usize::from(b - b'0');
                // Refused as soon as it is known to be too large.
                if value > self.max_data {
                    return Err(RelpError::DataTooLarge {
                        len: value,
                        max: self.max_data,
                    });
                }
                State::Datalen {
                    value,
                    digits: digits + 1,
                }
            }
            b' ' if digits > 0 && value == 0 => return Err(RelpError::SpaceWithoutData),
            b' ' if digits > 0 => {
                self.data.clear();
                self.data.reserve(value);
                State::Data { left: value }
            }
            b'\n' if digits > 0 && value == 0 => {
                self.data.clear();
                self.emit(out)?;
                State::NEXT_FRAME
            }
            b'\n' if digits > 0 => return Err(RelpError::MissingData(value)),
            _ => return Err(RelpError::BadDatalen(char::from(b))),
        })
    }

    fn emit(
        &mut self,
        out: &mut impl FnMut(Frame<'_>) -> Result<(), RelpError>,
    ) -> Result<(), RelpError> {
        let command = self.command.take().ok_or(RelpError::Failed)?;
        out(Frame {
            txnr: self.txnr,
            command,
            data: &self.data,
        })
    }
}

/// The transaction number after `txnr`.
pub fn next_txnr(txnr: u32) -> u32 {
    if txnr >= MAX_TXNR {
        1
    } else {
        txnr + 1
    }
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for `open`.
    AwaitingOpen,
    /// `open` accepted: `syslog` and `close` may come.
    Open,
    /// `close` received: no further command may come.
    Closing,
    /// The `close` answer went out (or the server sent `serverclose`):
    /// close the connection.
    Closed,
}

/// What the caller must do with an accepted frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// A session was opened; its answer is queued.
    Open,
    /// A message to hand on; answer it with [`RelpSession::complete`] once it
    /// is safe (or failed).
    Syslog { txnr: u32 },
    /// The client closes; the answer goes out after all earlier ones.
    Close,
}

#[derive(Debug)]
struct Pending {
    txnr: u32,
    /// The rsp data once the command is done (`None` while it is not).
    answer: Option<Vec<u8>>,
    close: bool,
}

/// The server side of one RELP session: the session rules (open first, then
/// syslog, close last, transaction numbers in sequence) and the unanswered
/// commands, so answers go out in command order even when messages are
/// completed out of order.
#[derive(Debug)]
pub struct RelpSession {
    phase: Phase,
    expected: u32,
    max_unacked: usize,
    pending: VecDeque<Pending>,
    software: String,
}

impl RelpSession {
    /// A new session allowing `max_unacked` unanswered commands.
    pub fn new(max_unacked: usize) -> RelpSession {
        RelpSession {
            phase: Phase::AwaitingOpen,
            expected: 1,
            max_unacked: max_unacked.max(1),
            pending: VecDeque::new(),
            // Name and version; the spec's third value, a URL, is optional.
            software: format!("dnsenrich,{}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Where the session is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Commands not yet answered (answers waiting for an earlier one count).
    pub fn unacked(&self) -> usize {
        self.pending.len()
    }

    /// Checks `frame` against the session rules and queues its answer slot.
    pub fn accept(&mut self, frame: &Frame<'_>) -> Result<Accepted, RelpError> {
        if frame.txnr != self.expected {
            return Err(RelpError::TxnrOutOfOrder {
                expected: self.expected,
                got: frame.txnr,
            });
        }
        let name = frame.command.as_str();
        match (self.phase, frame.command) {
            (Phase::Closing | Phase::Closed, _) => return Err(RelpError::AfterClose(name)),
            (Phase::AwaitingOpen, Command::Open) => {}
            (Phase::AwaitingOpen, _) => return Err(RelpError::NotOpen(name)),
            (Phase::Open, Command::Open) => return Err(RelpError::AlreadyOpen),
            (Phase::Open, _) => {}
        }
        if self.pending.len() >= self.max_unacked {
            return Err(RelpError::WindowExceeded(self.max_unacked));
        }
        self.expected = next_txnr(frame.txnr);
        let (accepted, answer) = match frame.command {
            Command::Open => {
                let offers_version = frame
                    .data
                    .split(|&b| b == b'\n')
                    .any(|o| o == b"relp_version" || o.starts_with(b"relp_version="));
                if !offers_version {
                    return Err(RelpError::NoVersionOffer);
                }
                self.phase = Phase::Open;
                let answer = format!(
                    "200 OK\nrelp_version=0\nrelp_software={}\ncommands=syslog\n",
                    self.software
                );
                (Accepted::Open, Some(answer.into_bytes()))
            }
            Command::Syslog => (Accepted::Syslog { txnr: frame.txnr }, None),
            Command::Close => {
                self.phase = Phase::Closing;
                (Accepted::Close, Some(b"200 OK".to_vec()))
            }
        };
        self.pending.push_back(Pending {
            txnr: frame.txnr,
            answer,
            close: frame.command == Command::Close,
        });
        Ok(accepted)
    }

    /// Marks the message `txnr` done: answered `200 OK`, or `500` with
    /// `error` (one line). Returns false for a txnr that is not waiting.
    pub fn complete(&mut self, txnr: u32, error: Option<&str>) -> bool {
        let Some(p) = self
            .pending
            .iter_mut()
            .find(|p| p.txnr == txnr && p.answer.is_none())
        else {
            return false;
        };
        p.answer = Some(match error {
            None => b"200 OK".to_vec(),
            Some(e) => {
                let line: String = e.chars().map(|c| if c == '\n' { ' ' } else { c }).collect();
                format!("500 {line}").into_bytes()
            }
        });
        true
    }

    /// Appends to `out` every answer that may go now: the done commands at
    /// the front of the queue, stopping at the first one not done. After the
    /// `close` answer the session is [`Phase::Closed`].
    pub fn take_responses(&mut self, out: &mut Vec<u8>) {
        while self.pending.front().is_some_and(|p| p.answer.is_some()) {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            let data = p.answer.unwrap_or_default();
            out.extend_from_slice(format!("{} rsp {} ", p.txnr, data.len()).as_bytes());
            out.extend_from_slice(&data);
            out.push(b'\n');
            if p.close {
                self.phase = Phase::Closed;
            }
        }
    }

    /// The server ends the session (shutdown, idle timeout): appends the
    /// `serverclose` hint. Unanswered commands stay unanswered; the client
    /// resends them.
    pub fn server_close(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(SERVERCLOSE_HINT);
        self.phase = Phase::Closed;
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Owned = (u32, Command, Vec<u8>);

    /// Decodes `chunks` one after another; the frames and the first error.
    fn decode(max: usize, chunks: &[&[u8]]) -> (Vec<Owned>, Option<RelpError>) {
        let mut d = RelpDecoder::new(max);
        let mut got = Vec::new();
        for c in chunks {
            let r = d.decode(c, &mut |f| {
                got.push((f.txnr, f.command, f.data.to_vec()));
                Ok(())
            });
            if let Err(e) = r {
                return (got, Some(e));
            }
        }
        (got, d.finish().err())
    }

    fn err(input: &[u8]) -> RelpError {
        let (_, e) = decode(DEFAULT_MAX_DATA, &[input]);
        e.expect("an error")
    }

    const OPEN: &[u8] = b"1 open 86 relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog";

    #[test]
    fn frames_of_every_command_decode() {
        let mut input = OPEN.to_vec();
        input.extend_from_slice(b"\n2 syslog 9 <13>a\nb c\n3 close 0\n");
        let (got, e) = decode(DEFAULT_MAX_DATA, &[&input]);
        assert_eq!(e, None);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0, 1);
        assert_eq!(got[0].1, Command::Open);
        assert_eq!(got[0].2, &OPEN[10..]);
        assert_eq!(got[1], (2, Command::Syslog, b"<13>a\nb c".to_vec()));
        assert_eq!(got[2], (3, Command::Close, Vec::new()));
    }

    #[test]
    fn a_frame_split_across_reads_at_every_byte_decodes() {
        let input = b"12 syslog 5 hello\n13 close 0\n";
        let chunks: Vec<&[u8]> = input.chunks(1).collect();
        let (got, e) = decode(64, &chunks);
        assert_eq!(e, None);
        assert_eq!(
            got,
            vec![
                (12, Command::Syslog, b"hello".to_vec()),
                (13, Command::Close, Vec::new())
            ]
        );
        for cut in 1..input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(decode(64, &[a, b]).0, got, "cut at {cut}");
        }
    }

    #[test]
    fn a_connection_ending_inside_a_frame_is_truncated() {
        let (got, e) = decode(64, &[b"1 syslog 5 hel"]);
        assert!(got.is_empty());
        assert_eq!(e, Some(RelpError::Truncated));
        assert_eq!(decode(64, &[b"1 sys"]).1, Some(RelpError::Truncated));
    }

    #[test]
    fn bad_txnr_is_refused() {
        assert_eq!(err(b"x syslog 1 a\n"), RelpError::BadTxnr('x'));
        assert_eq!(err(b" 1 syslog 1 a\n"), RelpError::BadTxnr(' '));
        assert_eq!(err(b"-1 syslog 1 a\n"), RelpError::BadTxnr('-'));
        assert_eq!(err(b"1234567890 syslog 1 a\n"), RelpError::TxnrTooLong);
        assert_eq!(err(b"0 syslog 1 a\n"), RelpError::TxnrZero);
        assert_eq!(err(b"000 syslog 1 a\n"), RelpError::TxnrZero);
    }

    #[test]
    fn unknown_or_malformed_commands_are_refused_before_their_data() {
        assert_eq!(
            err(b"1 starttls 0\n"),
            RelpError::UnknownCommand("starttls".into())
        );
        assert_eq!(
            err(b"1 rsp 6 200 OK\n"),
            RelpError::UnknownCommand("rsp".into())
        );
        // Refused at the space after the name: the 5 MB are never waited for.
        assert_eq!(
            decode(64, &[b"1 bogus 5000000 "]).1,
            Some(RelpError::UnknownCommand("bogus".into()))
        );
        assert_eq!(err(b"1 sys1og 1 a\n"), RelpError::BadCommand('1'));
        assert_eq!(err(b"1  syslog 1 a\n"), RelpError::BadCommand(' '));
        let long = format!("1 {} 0\n", "a".repeat(33));
        assert_eq!(err(long.as_bytes()), RelpError::CommandTooLong);
    }

    #[test]
    fn bad_datalen_is_refused() {
        assert_eq!(err(b"1 syslog x a\n"), RelpError::BadDatalen('x'));
        assert_eq!(err(b"1 syslog 1x a\n"), RelpError::BadDatalen('x'));
        assert_eq!(err(b"1 syslog  a\n"), RelpError::BadDatalen(' '));
        assert_eq!(err(b"1 syslog -1 a\n"), RelpError::BadDatalen('-'));
        assert_eq!(
            decode(2_000_000_000, &[b"1 syslog 1234567890 "]).1,
            Some(RelpError::DatalenTooLong)
        );
        assert_eq!(err(b"1 syslog 3\n"), RelpError::MissingData(3));
        assert_eq!(err(b"1 close 0 \n"), RelpError::SpaceWithoutData);
    }

    #[test]
    fn datalen_over_the_maximum_is_refused_as_soon_as_it_is_read() {
        // No data has arrived: the length alone is enough to refuse.
        assert_eq!(
            decode(100, &[b"1 syslog 101"]).1,
            Some(RelpError::DataTooLarge { len: 101, max: 100 })
        );
        assert_eq!(
            decode(100, &[b"1 syslog 100 "]).1,
            Some(RelpError::Truncated)
        );
    }

    #[test]
    fn datalen_not_matching_the_data_loses_the_trailer() {
        // DATALEN says 3, the data is 5 bytes: byte 4 is not the LF.
        assert_eq!(err(b"1 syslog 3 hello\n"), RelpError::MissingTrailer('l'));
        // No LF after the data at all: the next frame's TXNR follows.
        assert_eq!(
            err(b"1 syslog 5 hello2 close 0\n"),
            RelpError::MissingTrailer('2')
        );
        assert_eq!(err(b"1 close 0\r\n"), RelpError::BadDatalen('\r'));
    }

    #[test]
    fn after_an_error_nothing_more_is_decoded() {
        let mut d = RelpDecoder::new(64);
        let mut n = 0;
        let mut count = |_: Frame<'_>| {
            n += 1;
            Ok(())
        };
        assert!(d.decode(b"x", &mut count).is_err());
        assert_eq!(d.decode(b"1 close 0\n", &mut count), Err(RelpError::Failed));
        assert_eq!(n, 0);
        assert_eq!(d.finish(), Err(RelpError::Failed));
    }

    fn frame(txnr: u32, command: Command, data: &[u8]) -> Frame<'_> {
        Frame {
            txnr,
            command,
            data,
        }
    }

    fn opened() -> RelpSession {
        let mut s = RelpSession::new(DEFAULT_MAX_UNACKED);
        let open = frame(1, Command::Open, b"relp_version=0\ncommands=syslog");
        assert_eq!(s.accept(&open), Ok(Accepted::Open));
        s
    }

    #[test]
    fn open_is_answered_with_version_0_and_syslog() {
        let mut s = opened();
        let mut out = Vec::new();
        s.take_responses(&mut out);
        let text = String::from_utf8(out).unwrap();
        let (head, data) = text.split_once(" rsp ").unwrap();
        assert_eq!(head, "1");
        let (len, rest) = data.split_once(' ').unwrap();
        let body = rest.strip_suffix('\n').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), body.len());
        let lines: Vec<&str> = body.split('\n').collect();
        assert_eq!(lines[0], "200 OK");
        assert!(lines.contains(&"relp_version=0"), "{lines:?}");
        assert!(lines.contains(&"commands=syslog"), "{lines:?}");
        assert!(lines
            .iter()
            .any(|l| l.starts_with("relp_software=dnsenrich,")));
        assert_eq!(s.phase(), Phase::Open);
    }

    #[test]
    fn open_without_a_version_offer_is_refused() {
        let mut s = RelpSession::new(8);
        let open = frame(1, Command::Open, b"commands=syslog");
        assert_eq!(s.accept(&open), Err(RelpError::NoVersionOffer));
    }

    #[test]
    fn data_before_open_is_refused() {
        let mut s = RelpSession::new(8);
        assert_eq!(
            s.accept(&frame(1, Command::Syslog, b"<13>m")),
            Err(RelpError::NotOpen("syslog"))
        );
        let mut s = RelpSession::new(8);
        assert_eq!(
            s.accept(&frame(1, Command::Close, b"")),
            Err(RelpError::NotOpen("close"))
        );
        let mut s = opened();
        assert_eq!(
            s.accept(&frame(2, Command::Open, b"relp_version=0")),
            Err(RelpError::AlreadyOpen)
        );
    }

    #[test]
    fn txnrs_must_follow_one_another() {
        let mut s = opened();
        assert_eq!(
            s.accept(&frame(3, Command::Syslog, b"m")),
            Err(RelpError::TxnrOutOfOrder {
                expected: 2,
                got: 3
            })
        );
        let mut s = opened();
        assert_eq!(
            s.accept(&frame(2, Command::Syslog, b"m")),
            Ok(Accepted::Syslog { txnr: 2 })
        );
        assert_eq!(
            s.accept(&frame(2, Command::Syslog, b"m")),
            Err(RelpError::TxnrOutOfOrder {
                expected: 3,
                got: 2
            })
        );
        let mut s = RelpSession::new(8);
        assert!(matches!(
            s.accept(&frame(7, Command::Open, b"relp_version=0")),
            Err(RelpError::TxnrOutOfOrder {
                expected: 1,
                got: 7
            })
        ));
    }

    #[test]
    fn txnr_wraps_from_the_maximum_to_1() {
        assert_eq!(next_txnr(1), 2);
        assert_eq!(next_txnr(MAX_TXNR - 1), MAX_TXNR);
        assert_eq!(next_txnr(MAX_TXNR), 1);
        // The decoder takes the maximum itself.
        let (got, e) = decode(64, &[b"999999999 close 0\n"]);
        assert_eq!(e, None);
        assert_eq!(got[0].0, MAX_TXNR);
    }

    #[test]
    fn answers_go_out_in_command_order() {
        let mut s = opened();
        let mut out = Vec::new();
        s.take_responses(&mut out);
        out.clear();
        for t in 2..=4 {
            assert_eq!(
                s.accept(&frame(t, Command::Syslog, b"m")),
                Ok(Accepted::Syslog { txnr: t })
            );
        }
        assert_eq!(
            s.accept(&frame(5, Command::Close, b"")),
            Ok(Accepted::Close)
        );
        assert_eq!(s.unacked(), 4);
        // 3 and 4 are done first: nothing may go before 2.
        assert!(s.complete(4, None));
        assert!(s.complete(3, Some("queue\nfull")));
        s.take_responses(&mut out);
        assert!(out.is_empty());
        assert!(s.complete(2, None));
        assert!(!s.complete(2, None), "a txnr is answered once");
        assert!(!s.complete(99, None));
        s.take_responses(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2 rsp 6 200 OK\n3 rsp 14 500 queue full\n4 rsp 6 200 OK\n5 rsp 6 200 OK\n"
        );
        assert_eq!(s.phase(), Phase::Closed);
        assert_eq!(s.unacked(), 0);
    }

    #[test]
    fn nothing_may_follow_close() {
        let mut s = opened();
        assert_eq!(
            s.accept(&frame(2, Command::Close, b"")),
            Ok(Accepted::Close)
        );
        assert_eq!(
            s.accept(&frame(3, Command::Syslog, b"m")),
            Err(RelpError::AfterClose("syslog"))
        );
    }

    #[test]
    fn too_many_unanswered_commands_end_the_session() {
        let mut s = RelpSession::new(3);
        assert!(s
            .accept(&frame(1, Command::Open, b"relp_version=0"))
            .is_ok());
        assert!(s.accept(&frame(2, Command::Syslog, b"m")).is_ok());
        assert!(s.accept(&frame(3, Command::Syslog, b"m")).is_ok());
        assert_eq!(
            s.accept(&frame(4, Command::Syslog, b"m")),
            Err(RelpError::WindowExceeded(3))
        );
        // Once answers go out there is room again.
        let mut out = Vec::new();
        s.take_responses(&mut out);
        assert!(s.accept(&frame(4, Command::Syslog, b"m")).is_ok());
    }

    #[test]
    fn the_server_closes_with_the_serverclose_hint() {
        let mut s = opened();
        assert!(s.accept(&frame(2, Command::Syslog, b"m")).is_ok());
        let mut out = Vec::new();
        s.server_close(&mut out);
        assert_eq!(out, b"0 serverclose 0\n");
        assert_eq!(s.phase(), Phase::Closed);
        assert_eq!(s.unacked(), 0);
    }

    #[test]
    fn decoder_and_session_together_refuse_a_session_error_mid_stream() {
        let mut d = RelpDecoder::new(64);
        let mut s = RelpSession::new(8);
        let mut accepted = Vec::new();
        let r = d.decode(
            b"1 open 14 relp_version=0\n2 syslog 1 a\n4 syslog 1 b\n5 syslog 1 c\n",
            &mut |f| {
                accepted.push(s.accept(&f)?);
                Ok(())
            },
        );
        assert_eq!(
            r,
            Err(RelpError::TxnrOutOfOrder {
                expected: 3,
                got: 4
            })
        );
        assert_eq!(accepted, vec![Accepted::Open, Accepted::Syslog { txnr: 2 }]);
    }
}
