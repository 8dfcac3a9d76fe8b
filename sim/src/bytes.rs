//! The compact byte form of a trace, for fuzzers.
//!
//! [`decode`] is total: every byte string is a valid trace, and decoding
//! never panics. [`encode`] is its inverse on the traces `decode` can
//! produce, so generated and hand-written traces can seed a corpus.
//! `Trace` also implements [`arbitrary::Arbitrary`] through `decode`.
//!
//! # Byte format, version 2 ([`FORMAT_VERSION`])
//!
//! This is a compatibility surface: the committed fuzz corpus depends on it.
//! Change it only together with the corpus (and bump the version).
//!
//! ```text
//! input   = threads op*
//! threads = 1 byte: n_threads = 1 + b % 4        (threads t0 .. t(n_threads-1))
//!                   bit 2 (b & 4) set: `set parked-heaps 1` (one heap of an
//!                   exited thread is kept parked); clear: no setting
//!                   (bits 3..7 ignored)
//! ```
//!
//! (Version 1 ignored bit 2: an input of version 1 with it set now runs
//! with a parked heap, the same ops otherwise.)
//!
//! Each op is an opcode byte followed by its operands. An op whose operands
//! run past the end of the input is dropped and decoding stops. Operands are
//! taken modulo what exists, so they are always valid:
//!
//! ```text
//! T  thread          1 byte   t = b % n_threads
//! H  live handle     W bytes  little-endian v; the handle live[v % live.len()];
//!                             W = 1 while live.len() <= 2^8, 2 while <= 2^16,
//!                             3 while <= 2^24, else 4
//! R  recent handle   1 byte   recent[b % recent.len()]: recent holds the ids
//!                             of the last 8 blocks freed, oldest first
//! S  size            1 selector byte s, then 0..3 bytes (x little-endian):
//!      s   0..=63   16 * (s/4 + 1) + [0, -1, +1, -8][s % 4]    (8 ..= 257)
//!      s  64..=127  class edge e = EDGES[(s-64)/4], prev the edge before
//!                   (128 for the first): [e, e-1, e+1, prev + (e-prev)/2][s % 4]
//!                   EDGES = 160 192 224 256 320 384 448 512
//!                           640 768 896 1024 1280 1536 1792 2048
//!      s 128..=191  + 2 bytes: x % 2049                        (0 ..= 2048)
//!      s 192..=223  + 1 byte:  x                               (0 ..= 255)
//!      s 224..=243  + 2 bytes: 2049 + x % 63488                (2049 ..= 64 KiB)
//!      s 244..=251  LARGE_EDGES[s-244] = 2049 4095 4096 4097 8192 16385 32768 65536
//!      s 252..=253  + 3 bytes: x % (2^20 + 1)                  (0 ..= 1 MiB)
//!      s 254        0
//!      s 255        1
//! F  alloc flags     1 byte   align = ALIGNS[f % 32], zeroed = f & 32 != 0
//!                             (bits 6 and 7 ignored); ALIGNS = 16 x8,
//!                             32 64 .. 4096 (twice), 8192 16384 32768 65536,
//!                             1 2 4 8
//! O  interior offset 1 byte   1 + b % min(size - 1, 256), size the block's
//!                             current size
//! C  count           1 byte   1 + b % 3
//! ```
//!
//! Opcodes (ranges of the opcode byte; weights are range widths / 256):
//!
//! ```text
//!   0..=79   alloc            T S     t allocates p<next id>; align 16, not zeroed
//!  80..=95   alloc+flags      T S F
//!  96..=149  free             H       by the block's owner
//! 150..=177  free remote      H T     by thread t (the owner if t happens to be it)
//! 178..=191  realloc          H S     by the owner
//! 192..=195  realloc remote   H T S   by thread t, who becomes the owner
//! 196..=205  drain            T
//! 206..=215  collect          T
//! 216..=221  exit             T
//! 222..=227  trim
//! 228..=239  check
//! 240..=243  os fail map      C
//! 244..=246  os fail commit   C
//! 247..=249  double free      R T     free of a recently freed (dead) id
//! 250..=252  free interior    H T O
//! 253..=255  free foreign     T
//! ```
//!
//! An op that needs a live (or recent) handle when there is none is skipped:
//! only its opcode byte is consumed. An interior free of a block smaller
//! than 2 bytes is skipped after its operands are read. Handles are
//! numbered `p1, p2, ...` in allocation order; the "owner" of a handle is
//! the thread that allocated it (or last reallocated it remotely) — a
//! decoder notion that picks the thread of a plain free, not a claim about
//! which heap holds the block. A free (plain or remote) removes its handle
//! from `live` with `Vec::swap_remove` (the last handle takes its place) and
//! appends its id to `recent`; new handles are appended to `live`. This fixes
//! the order `H` indexes. Nothing else changes `live` or `recent`.

use std::collections::{HashMap, VecDeque};

use crate::trace::{Op, OsFailKind, Trace, DEFAULT_ALIGN};

/// The version of the byte format described in the module docs.
pub const FORMAT_VERSION: u32 = 2;

/// The most threads a byte-form trace uses (`t0..t3`).
pub const MAX_BYTE_THREADS: u8 = 4;

/// The bit of the first byte that says `set parked-heaps 1`.
const PARKED_BIT: u8 = 4;

/// How many recently freed ids a double free can pick from.
const RECENT_COUNT: usize = 8;

const MIB: usize = 1 << 20;

const EDGES: [usize; 16] = [
    160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048,
];

const LARGE_EDGES: [usize; 8] = [2049, 4095, 4096, 4097, 8192, 16385, 32768, 65536];

const ALIGNS: [usize; 32] = [
    16, 16, 16, 16, 16, 16, 16, 16, //
    32, 64, 128, 256, 512, 1024, 2048, 4096, //
    32, 64, 128, 256, 512, 1024, 2048, 4096, //
    8192, 16384, 32768, 65536, //
    1, 2, 4, 8,
];

const ZEROED_BIT: u8 = 32;

/// The kinds of op, one per opcode range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Code {
    Alloc,
    AllocFlags,
    Free,
    FreeRemote,
    Realloc,
    ReallocRemote,
    Drain,
    Collect,
    Exit,
    Trim,
    Check,
    FailMap,
    FailCommit,
    DoubleFree,
    FreeInterior,
    FreeForeign,
}

impl Code {
    #[cfg(test)]
    const ALL: [Code; 16] = [
        Code::Alloc,
        Code::AllocFlags,
        Code::Free,
        Code::FreeRemote,
        Code::Realloc,
        Code::ReallocRemote,
        Code::Drain,
        Code::Collect,
        Code::Exit,
        Code::Trim,
        Code::Check,
        Code::FailMap,
        Code::FailCommit,
        Code::DoubleFree,
        Code::FreeInterior,
        Code::FreeForeign,
    ];

    fn of(b: u8) -> Code {
        match b {
            0..=79 => Code::Alloc,
            80..=95 => Code::AllocFlags,
            96..=149 => Code::Free,
            150..=177 => Code::FreeRemote,
            178..=191 => Code::Realloc,
            192..=195 => Code::ReallocRemote,
            196..=205 => Code::Drain,
            206..=215 => Code::Collect,
            216..=221 => Code::Exit,
            222..=227 => Code::Trim,
            228..=239 => Code::Check,
            240..=243 => Code::FailMap,
            244..=246 => Code::FailCommit,
            247..=249 => Code::DoubleFree,
            250..=252 => Code::FreeInterior,
            253..=255 => Code::FreeForeign,
        }
    }

    /// The first byte of the code's range (what `encode` writes).
    fn byte(self) -> u8 {
        match self {
            Code::Alloc => 0,
            Code::AllocFlags => 80,
            Code::Free => 96,
            Code::FreeRemote => 150,
            Code::Realloc => 178,
            Code::ReallocRemote => 192,
            Code::Drain => 196,
            Code::Collect => 206,
            Code::Exit => 216,
            Code::Trim => 222,
            Code::Check => 228,
            Code::FailMap => 240,
            Code::FailCommit => 244,
            Code::DoubleFree => 247,
            Code::FreeInterior => 250,
            Code::FreeForeign => 253,
        }
    }
}

/// A live handle as the decoder sees it.
#[derive(Clone, Copy, Debug)]
struct Live {
    id: u32,
    /// The thread a plain `free` / `realloc` of this handle runs on.
    owner: u8,
    /// Current size in bytes (bounds interior offsets).
    size: usize,
}

/// What operands are taken modulo: shared by `decode` and `encode`, which
/// must evolve it identically.
#[derive(Debug)]
struct State {
    n_threads: u8,
    next_id: u32,
    live: Vec<Live>,
    recent: VecDeque<u32>,
    /// id -> position in `live`; kept by `encode` only (decoding needs no
    /// lookups by id).
    index: Option<HashMap<u32, usize>>,
}

impl State {
    fn new(n_threads: u8) -> State {
        State {
            n_threads,
            next_id: 1,
            live: Vec::new(),
            recent: VecDeque::with_capacity(RECENT_COUNT),
            index: None,
        }
    }

    /// Bytes of an `H` operand for the current number of live handles.
    fn handle_width(&self) -> usize {
        match self.live.len() {
            0..=0x100 => 1,
            0x101..=0x1_0000 => 2,
            0x1_0001..=0x100_0000 => 3,
            _ => 4,
        }
    }

    fn alloc(&mut self, t: u8, size: usize) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        if let Some(index) = &mut self.index {
            index.insert(id, self.live.len());
        }
        self.live.push(Live { id, owner: t, size });
        id
    }

    fn free(&mut self, idx: usize) {
        let gone = self.live.swap_remove(idx);
        if let Some(index) = &mut self.index {
            index.remove(&gone.id);
            if let Some(moved) = self.live.get(idx) {
                index.insert(moved.id, idx);
            }
        }
        if self.recent.len() == RECENT_COUNT {
            self.recent.pop_front();
        }
        self.recent.push_back(gone.id);
    }

    fn find(&self, id: u32) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(&id).copied(),
            None => self.live.iter().position(|l| l.id == id),
        }
    }
}

/// A cursor over the input; `None` once it runs out.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// `n` bytes, little-endian.
    fn le(&mut self, n: usize) -> Option<u64> {
        let bytes = self.data.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(
            bytes
                .iter()
                .rev()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        )
    }

    fn thread(&mut self, st: &State) -> Option<u8> {
        Some(self.byte()? % st.n_threads)
    }

    fn handle(&mut self, st: &State) -> Option<usize> {
        let v = self.le(st.handle_width())?;
        Some((v % st.live.len() as u64) as usize)
    }

    fn size(&mut self) -> Option<usize> {
        let s = self.byte()?;
        if let Some(size) = one_byte_size(s) {
            return Some(size);
        }
        Some(match s {
            128..=191 => (self.le(2)? % 2049) as usize,
            192..=223 => usize::from(self.byte()?),
            224..=243 => 2049 + (self.le(2)? % 63488) as usize,
            _ => (self.le(3)? % (MIB as u64 + 1)) as usize, // 252..=253
        })
    }
}

/// The size of a selector that needs no further bytes, `None` for the
/// selectors that read more.
fn one_byte_size(s: u8) -> Option<usize> {
    let s = usize::from(s);
    match s {
        0..=63 => {
            let base = 16 * (s / 4 + 1);
            Some([base, base - 1, base + 1, base - 8][s % 4])
        }
        64..=127 => {
            let c = (s - 64) / 4;
            let edge = EDGES[c];
            let prev = if c == 0 { 128 } else { EDGES[c - 1] };
            Some([edge, edge - 1, edge + 1, prev + (edge - prev) / 2][s % 4])
        }
        244..=251 => Some(LARGE_EDGES[s - 244]),
        254 => Some(0),
        255 => Some(1),
        _ => None,
    }
}

fn interior_offset(b: u8, size: usize) -> usize {
    1 + usize::from(b) % (size - 1).min(256)
}

/// Decodes any byte string into a trace (see the module docs). Total and
/// panic-free.
pub fn decode(data: &[u8]) -> Trace {
    let mut r = Reader { data, pos: 0 };
    let mut ops = Vec::new();
    let Some(first) = r.byte() else {
        return Trace::new(ops);
    };
    let mut st = State::new(1 + first % MAX_BYTE_THREADS);
    while let Some(code) = r.byte() {
        match decode_op(Code::of(code), &mut r, &mut st) {
            Some(Some(op)) => ops.push(op),
            Some(None) => {}
            None => break,
        }
    }
    Trace {
        ops,
        parked_heaps: (first & PARKED_BIT != 0).then_some(1),
    }
}

/// One op: `None` when the input ran out, `Some(None)` when skipped.
fn decode_op(code: Code, r: &mut Reader<'_>, st: &mut State) -> Option<Option<Op>> {
    let needs_live = matches!(
        code,
        Code::Free | Code::FreeRemote | Code::Realloc | Code::ReallocRemote | Code::FreeInterior
    );
    if (needs_live && st.live.is_empty()) || (code == Code::DoubleFree && st.recent.is_empty()) {
        return Some(None);
    }
    let op = match code {
        Code::Alloc | Code::AllocFlags => {
            let t = r.thread(st)?;
            let size = r.size()?;
            let (align, zeroed) = if code == Code::AllocFlags {
                let f = r.byte()?;
                (ALIGNS[usize::from(f % 32)], f & ZEROED_BIT != 0)
            } else {
                (DEFAULT_ALIGN, false)
            };
            if st.next_id == u32::MAX {
                return Some(None);
            }
            let id = st.alloc(t, size);
            Op::Alloc {
                t,
                id,
                size,
                align,
                zeroed,
            }
        }
        Code::Free | Code::FreeRemote => {
            let idx = r.handle(st)?;
            let live = st.live[idx];
            let t = if code == Code::FreeRemote {
                r.thread(st)?
            } else {
                live.owner
            };
            st.free(idx);
            Op::Free { t, id: live.id }
        }
        Code::Realloc | Code::ReallocRemote => {
            let idx = r.handle(st)?;
            let t = if code == Code::ReallocRemote {
                r.thread(st)?
            } else {
                st.live[idx].owner
            };
            let size = r.size()?;
            let live = &mut st.live[idx];
            live.owner = t;
            live.size = size;
            Op::Realloc {
                t,
                id: live.id,
                size,
            }
        }
        Code::Drain => Op::Drain { t: r.thread(st)? },
        Code::Collect => Op::Collect { t: r.thread(st)? },
        Code::Exit => Op::Exit { t: r.thread(st)? },
        Code::Trim => Op::Trim,
        Code::Check => Op::Check,
        Code::FailMap | Code::FailCommit => Op::OsFail {
            what: if code == Code::FailMap {
                OsFailKind::Map
            } else {
                OsFailKind::Commit
            },
            count: 1 + u32::from(r.byte()? % 3),
        },
        Code::DoubleFree => {
            let j = usize::from(r.byte()?) % st.recent.len();
            let t = r.thread(st)?;
            Op::Free {
                t,
                id: st.recent[j],
            }
        }
        Code::FreeInterior => {
            let idx = r.handle(st)?;
            let t = r.thread(st)?;
            let b = r.byte()?;
            let live = st.live[idx];
            if live.size < 2 {
                return Some(None);
            }
            Op::FreeInterior {
                t,
                id: live.id,
                offset: interior_offset(b, live.size),
            }
        }
        Code::FreeForeign => Op::FreeForeign { t: r.thread(st)? },
    };
    Some(Some(op))
}

/// The bytes that [`decode`] turns back into `trace`, or `None` if `trace`
/// is not one `decode` can produce: more than [`MAX_BYTE_THREADS`] threads,
/// handles not numbered `p1, p2, ...` in allocation order, a free or
/// realloc of a handle that is not live (other than a double free of one of
/// the last 8 freed), a size above 1 MiB, an alignment above 64 KiB, an
/// `os fail` count outside `1..=3`, an interior offset the `O` operand
/// cannot express, or a `parked-heaps` setting other than 1.
///
/// `decode(&encode(&t)?) == t` whenever it returns `Some`.
pub fn encode(trace: &Trace) -> Option<Vec<u8>> {
    let max_thread = trace.ops.iter().filter_map(Op::thread).max().unwrap_or(0);
    if max_thread >= MAX_BYTE_THREADS {
        return None;
    }
    let parked = match trace.parked_heaps {
        None => 0,
        Some(1) => PARKED_BIT,
        Some(_) => return None,
    };
    let mut st = State::new(max_thread + 1);
    st.index = Some(HashMap::new());
    let mut out = vec![max_thread | parked];
    for op in &trace.ops {
        encode_op(op, &mut st, &mut out)?;
    }
    Some(out)
}

fn encode_op(op: &Op, st: &mut State, out: &mut Vec<u8>) -> Option<()> {
    match *op {
        Op::Alloc {
            t,
            id,
            size,
            align,
            zeroed,
        } => {
            if id != st.next_id || id == u32::MAX {
                return None;
            }
            let plain = align == DEFAULT_ALIGN && !zeroed;
            out.push(if plain { Code::Alloc } else { Code::AllocFlags }.byte());
            out.push(t);
            write_size(out, size)?;
            if !plain {
                let f = (0..32u8).find(|&f| ALIGNS[usize::from(f)] == align)?;
                out.push(if zeroed { f | ZEROED_BIT } else { f });
            }
            st.alloc(t, size);
        }
        Op::Free { t, id } => {
            if let Some(idx) = st.find(id) {
                if t == st.live[idx].owner {
                    out.push(Code::Free.byte());
                    write_handle(out, st, idx);
                } else {
                    out.push(Code::FreeRemote.byte());
                    write_handle(out, st, idx);
                    out.push(t);
                }
                st.free(idx);
            } else {
                let j = st.recent.iter().position(|&r| r == id)?;
                out.extend([Code::DoubleFree.byte(), j as u8, t]);
            }
        }
        Op::Realloc { t, id, size } => {
            let idx = st.find(id)?;
            if t == st.live[idx].owner {
                out.push(Code::Realloc.byte());
                write_handle(out, st, idx);
            } else {
                out.push(Code::ReallocRemote.byte());
                write_handle(out, st, idx);
                out.push(t);
            }
            write_size(out, size)?;
            st.live[idx].owner = t;
            st.live[idx].size = size;
        }
        Op::FreeInterior { t, id, offset } => {
            let idx = st.find(id)?;
            let size = st.live[idx].size;
            if size < 2 {
                return None;
            }
            let b = (0..=255u8).find(|&b| interior_offset(b, size) == offset)?;
            out.push(Code::FreeInterior.byte());
            write_handle(out, st, idx);
            out.extend([t, b]);
        }
        Op::FreeForeign { t } => out.extend([Code::FreeForeign.byte(), t]),
        Op::Drain { t } => out.extend([Code::Drain.byte(), t]),
        Op::Collect { t } => out.extend([Code::Collect.byte(), t]),
        Op::Exit { t } => out.extend([Code::Exit.byte(), t]),
        Op::Trim => out.push(Code::Trim.byte()),
        Op::Check => out.push(Code::Check.byte()),
        Op::OsFail { what, count } => {
            if !(1..=3).contains(&count) {
                return None;
            }
            let code = match what {
                OsFailKind::Map => Code::FailMap,
                OsFailKind::Commit => Code::FailCommit,
            };
            out.extend([code.byte(), (count - 1) as u8]);
        }
    }
    Some(())
}

fn write_handle(out: &mut Vec<u8>, st: &State, idx: usize) {
    let bytes = (idx as u64).to_le_bytes();
    out.extend_from_slice(&bytes[..st.handle_width()]);
}

/// Writes the shortest `S` operand that decodes to `size`.
fn write_size(out: &mut Vec<u8>, size: usize) -> Option<()> {
    if let Some(s) = (0..=255u8).find(|&s| one_byte_size(s) == Some(size)) {
        out.push(s);
    } else if size <= 255 {
        out.extend([192, size as u8]);
    } else if size <= 2048 {
        out.push(128);
        out.extend_from_slice(&(size as u16).to_le_bytes());
    } else if size <= 65536 {
        out.push(224);
        out.extend_from_slice(&((size - 2049) as u16).to_le_bytes());
    } else if size <= MIB {
        out.push(252);
        out.extend_from_slice(&(size as u32).to_le_bytes()[..3]);
    } else {
        return None;
    }
    Some(())
}

/// Fuzz targets can take a `Trace` directly: `fuzz_target!(|t: Trace| ..)`
/// decodes the whole input with [`decode`].
impl<'a> arbitrary::Arbitrary<'a> for Trace {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = u.arbitrary_len::<u8>()?;
        Ok(decode(u.bytes(len)?))
    }

    fn arbitrary_take_rest(u: arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(decode(u.take_rest()))
    }
}

#[cfg(test)]
#[path = "bytes_tests.rs"]
mod tests;
