//! The op trace and its text form.
//!
//! A trace is what the runner replays against a fresh allocator: a list of
//! [`Op`]s over logical threads `t0..t15` and block handles `p1, p2, ...`.
//! Handles stand for pointers, so a trace never depends on memory layout,
//! and deleting lines minimizes it.
//!
//! The text form has one op per line; `#` starts a comment (whole-line or
//! trailing) and blank lines are ignored:
//!
//! ```text
//! # found-by: fuzz alloc_ops   violates: I1
//! t0 alloc p1 48
//! t0 alloc p2 48 align=64
//! t0 alloc p3 100 zeroed
//! t1 free p1        # remote free: p1 belongs to t0
//! t0 free p2+24
//! t0 free foreign
//! t0 realloc p3 300
//! t0 drain
//! t0 collect
//! t0 exit
//! trim
//! os fail map 1
//! os fail commit 2
//! check
//! ```
//!
//! A trace may start with settings for the run, before its first op:
//! `set parked-heaps N` keeps up to `N` heaps of exited threads parked for
//! the next new thread (`hakmem::Config::parked_heaps`; without it the run
//! configuration decides: none on the tiny geometry, two on production).
//!
//! `Display` prints the canonical form (the default alignment 16 omitted,
//! `zeroed` only when true) and [`Trace::parse`] reads it back:
//! `Trace::parse(&t.to_string()) == Ok(t)` for every trace whose numbers are
//! within the text bounds ([`Trace::validate`]).
//!
//! The parser checks syntax and ranges only. Whether a handle is live, dead
//! or never allocated is the runner's business: a trace that frees `p9`
//! before allocating it parses fine.

use std::fmt;

/// Logical threads are `t0 .. t(MAX_THREADS - 1)`.
pub const MAX_THREADS: usize = 16;

/// The alignment every block gets without asking; omitted in the text form.
pub const DEFAULT_ALIGN: usize = 16;

/// Largest size, alignment or offset the text form accepts (1 TiB).
pub const MAX_TEXT_SIZE: usize = 1 << 40;

/// Largest `set parked-heaps` value the text form accepts.
pub const MAX_PARKED_HEAPS: usize = MAX_THREADS;

/// A sequence of operations replayed in order, and the settings it runs
/// with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Trace {
    pub ops: Vec<Op>,
    /// `set parked-heaps N`: how many heaps of exited threads the allocator
    /// keeps parked (`Config::parked_heaps`); `None` leaves the run
    /// configuration's value.
    pub parked_heaps: Option<usize>,
}

/// Which OS call an injected failure hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OsFailKind {
    /// `Os::map`
    Map,
    /// `Os::commit`
    Commit,
}

/// One operation of a trace.
///
/// `t` is a logical thread in `0..MAX_THREADS`; `id` a block handle.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Thread `t` allocates `size` bytes aligned to `align` (a power of two,
    /// [`DEFAULT_ALIGN`] by default) and calls the block `id`; `zeroed` asks
    /// for zero-filled memory.
    Alloc {
        t: u8,
        id: u32,
        size: usize,
        align: usize,
        zeroed: bool,
    },
    /// Thread `t` frees block `id`. If `t` is not the thread that allocated
    /// it, the free is remote (cross-thread); if `id` is dead, a double free.
    Free { t: u8, id: u32 },
    /// Thread `t` frees `p + offset` (`offset > 0`), a pointer inside block
    /// `id`: the allocator must report it and leave the block alone.
    FreeInterior { t: u8, id: u32, offset: usize },
    /// Thread `t` frees a pointer the allocator never made: must be reported.
    FreeForeign { t: u8 },
    /// Thread `t` reallocates block `id` to `size` bytes; the handle keeps
    /// its id.
    Realloc { t: u8, id: u32, size: usize },
    /// Thread `t` drains its thread caches back to the slabs.
    Drain { t: u8 },
    /// Thread `t` collects the remote queues of its slabs.
    Collect { t: u8 },
    /// Thread `t` exits: its heap is parked for the next new thread (while
    /// fewer than `parked_heaps` are), or flushes and abandons its slabs.
    Exit { t: u8 },
    /// The allocator gives back to the OS whatever it can.
    Trim,
    /// The next `count` calls of kind `what` to the OS layer fail.
    OsFail { what: OsFailKind, count: u32 },
    /// Run the full checker.
    Check,
}

impl Op {
    /// The thread that performs the op, if it has one.
    pub fn thread(&self) -> Option<u8> {
        match *self {
            Op::Alloc { t, .. }
            | Op::Free { t, .. }
            | Op::FreeInterior { t, .. }
            | Op::FreeForeign { t }
            | Op::Realloc { t, .. }
            | Op::Drain { t }
            | Op::Collect { t }
            | Op::Exit { t } => Some(t),
            Op::Trim | Op::OsFail { .. } | Op::Check => None,
        }
    }

    /// The block handle the op names, if any.
    pub fn handle(&self) -> Option<u32> {
        match *self {
            Op::Alloc { id, .. }
            | Op::Free { id, .. }
            | Op::FreeInterior { id, .. }
            | Op::Realloc { id, .. } => Some(id),
            _ => None,
        }
    }

    /// Whether the text form can carry this op unchanged (see
    /// [`Trace::validate`]); `Err` says what is out of range.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(t) = self.thread() {
            if t as usize >= MAX_THREADS {
                return Err(format!(
                    "thread t{t} out of range (max t{})",
                    MAX_THREADS - 1
                ));
            }
        }
        match *self {
            Op::Alloc { size, align, .. } => {
                check_size(size)?;
                check_align(align)
            }
            Op::Realloc { size, .. } => check_size(size),
            Op::FreeInterior { offset, .. } => check_offset(offset),
            _ => Ok(()),
        }
    }
}

fn check_size(size: usize) -> Result<(), String> {
    if size > MAX_TEXT_SIZE {
        return Err(format!("size {size} is too large (max {MAX_TEXT_SIZE})"));
    }
    Ok(())
}

fn check_align(align: usize) -> Result<(), String> {
    if !align.is_power_of_two() {
        return Err(format!("alignment {align} is not a power of two"));
    }
    if align > MAX_TEXT_SIZE {
        return Err(format!(
            "alignment {align} is too large (max {MAX_TEXT_SIZE})"
        ));
    }
    Ok(())
}

fn check_offset(offset: usize) -> Result<(), String> {
    if offset == 0 {
        return Err("interior offset must be positive".to_string());
    }
    if offset > MAX_TEXT_SIZE {
        return Err(format!(
            "interior offset {offset} is too large (max {MAX_TEXT_SIZE})"
        ));
    }
    Ok(())
}

impl fmt::Display for OsFailKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OsFailKind::Map => "map",
            OsFailKind::Commit => "commit",
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Op::Alloc {
                t,
                id,
                size,
                align,
                zeroed,
            } => {
                write!(f, "t{t} alloc p{id} {size}")?;
                if align != DEFAULT_ALIGN {
                    write!(f, " align={align}")?;
                }
                if zeroed {
                    f.write_str(" zeroed")?;
                }
                Ok(())
            }
            Op::Free { t, id } => write!(f, "t{t} free p{id}"),
            Op::FreeInterior { t, id, offset } => write!(f, "t{t} free p{id}+{offset}"),
            Op::FreeForeign { t } => write!(f, "t{t} free foreign"),
            Op::Realloc { t, id, size } => write!(f, "t{t} realloc p{id} {size}"),
            Op::Drain { t } => write!(f, "t{t} drain"),
            Op::Collect { t } => write!(f, "t{t} collect"),
            Op::Exit { t } => write!(f, "t{t} exit"),
            Op::Trim => f.write_str("trim"),
            Op::OsFail { what, count } => write!(f, "os fail {what} {count}"),
            Op::Check => f.write_str("check"),
        }
    }
}

/// The canonical text form: the settings, then one op per line, each line
/// ending in `\n`.
impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.parked_heaps {
            writeln!(f, "set parked-heaps {n}")?;
        }
        for op in &self.ops {
            writeln!(f, "{op}")?;
        }
        Ok(())
    }
}

/// Why a text trace did not parse, and where (both 1-based; the column
/// counts characters and points at the offending token, or just past the
/// end of the line when something is missing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.reason
        )
    }
}

impl std::error::Error for ParseError {}

impl Trace {
    /// The trace of `ops`, with no settings.
    pub fn new(ops: Vec<Op>) -> Trace {
        Trace {
            ops,
            parked_heaps: None,
        }
    }

    /// Reads the text form (see the module docs).
    pub fn parse(text: &str) -> Result<Trace, ParseError> {
        let mut trace = Trace::default();
        for (idx, line) in text.lines().enumerate() {
            let mut parser = LineParser::new(idx + 1, line);
            if parser.peek().is_some_and(|(_, w)| w == "set") {
                parser.setting(&mut trace)?;
            } else if let Some(op) = parser.op()? {
                trace.ops.push(op);
            }
        }
        Ok(trace)
    }

    /// Checks that every op and setting is within the bounds of the text
    /// form, so that `Trace::parse(&self.to_string()) == Ok(self.clone())`.
    /// `Err` gives the index of the first bad op (0 for a setting) and the
    /// reason.
    pub fn validate(&self) -> Result<(), (usize, String)> {
        if let Some(n) = self.parked_heaps {
            if n > MAX_PARKED_HEAPS {
                return Err((
                    0,
                    format!("parked-heaps {n} is too large (max {MAX_PARKED_HEAPS})"),
                ));
            }
        }
        for (idx, op) in self.ops.iter().enumerate() {
            op.validate().map_err(|reason| (idx, reason))?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Trace {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Trace, ParseError> {
        Trace::parse(s)
    }
}

/// The whitespace-separated words of one line (comment stripped), each with
/// the 1-based character column where it starts.
struct LineParser<'a> {
    line: usize,
    words: Vec<(usize, &'a str)>,
    next: usize,
    /// Column just past the last word (where a missing word would go).
    end_column: usize,
}

impl<'a> LineParser<'a> {
    fn new(line: usize, text: &'a str) -> LineParser<'a> {
        let content = match text.find('#') {
            Some(hash) => &text[..hash],
            None => text,
        };
        let mut words = Vec::new();
        let mut start: Option<(usize, usize)> = None; // (byte, column)
        for (column_idx, (byte, ch)) in content.char_indices().enumerate() {
            if ch.is_whitespace() {
                if let Some((b, c)) = start.take() {
                    words.push((c, &content[b..byte]));
                }
            } else if start.is_none() {
                start = Some((byte, column_idx + 1));
            }
        }
        if let Some((b, c)) = start {
            words.push((c, &content[b..]));
        }
        // Just past the last character of the last word.
        let end_column = match words.last() {
            Some(&(c, w)) => c + w.chars().count(),
            None => 1,
        };
        LineParser {
            line,
            words,
            next: 0,
            end_column,
        }
    }

    fn error(&self, column: usize, reason: String) -> ParseError {
        ParseError {
            line: self.line,
            column,
            reason,
        }
    }

    /// The next word, or an error saying `what` is missing after the
    /// previous word.
    fn word(&mut self, what: &str) -> Result<(usize, &'a str), ParseError> {
        match self.words.get(self.next) {
            Some(&w) => {
                self.next += 1;
                Ok(w)
            }
            None => {
                let after = match self.next.checked_sub(1) {
                    Some(prev) => format!(" after '{}'", self.words[prev].1),
                    None => String::new(),
                };
                Err(self.error(self.end_column, format!("expected {what}{after}")))
            }
        }
    }

    fn peek(&self) -> Option<(usize, &'a str)> {
        self.words.get(self.next).copied()
    }

    /// Fails if any word is left over.
    fn end(&self, op: Op) -> Result<Option<Op>, ParseError> {
        match self.peek() {
            None => Ok(Some(op)),
            Some((column, w)) => Err(self.error(
                column,
                format!("unexpected '{w}' after the end of the op '{op}'"),
            )),
        }
    }

    fn op(&mut self) -> Result<Option<Op>, ParseError> {
        let Some((column, first)) = self.peek() else {
            return Ok(None);
        };
        self.next += 1;
        match first {
            "trim" => self.end(Op::Trim),
            "check" => self.end(Op::Check),
            "os" => self.os_fail(),
            w if w.starts_with('t') => {
                let t = self.thread(column, w)?;
                self.thread_op(t)
            }
            w => Err(self.error(
                column,
                format!(
                    "unknown op '{w}' (expected a thread like t0, 'trim', 'check' or 'os fail')"
                ),
            )),
        }
    }

    /// A `set NAME VALUE` line: the trace's settings come before its first
    /// op, each at most once.
    fn setting(&mut self, trace: &mut Trace) -> Result<(), ParseError> {
        let (column, _) = self.word("'set'")?;
        if !trace.ops.is_empty() {
            return Err(self.error(
                column,
                "a setting must come before the first op".to_string(),
            ));
        }
        let (column, name) = self.word("a setting name")?;
        if name != "parked-heaps" {
            return Err(self.error(
                column,
                format!("unknown setting '{name}' (expected parked-heaps)"),
            ));
        }
        if trace.parked_heaps.is_some() {
            return Err(self.error(column, "parked-heaps is set twice".to_string()));
        }
        let (column, w) = self.word("a number of heaps")?;
        let n = parse_number(w)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= MAX_PARKED_HEAPS)
            .ok_or_else(|| {
                self.error(
                    column,
                    format!("expected a number of heaps from 0 to {MAX_PARKED_HEAPS}, found '{w}'"),
                )
            })?;
        if let Some((column, w)) = self.peek() {
            return Err(self.error(
                column,
                format!("unexpected '{w}' after 'set parked-heaps {n}'"),
            ));
        }
        trace.parked_heaps = Some(n);
        Ok(())
    }

    fn os_fail(&mut self) -> Result<Option<Op>, ParseError> {
        let (column, w) = self.word("'fail'")?;
        if w != "fail" {
            return Err(self.error(column, format!("expected 'fail' after 'os', found '{w}'")));
        }
        let (column, w) = self.word("'map' or 'commit'")?;
        let what = match w {
            "map" => OsFailKind::Map,
            "commit" => OsFailKind::Commit,
            _ => {
                return Err(self.error(
                    column,
                    format!("expected 'map' or 'commit' after 'os fail', found '{w}'"),
                ))
            }
        };
        let (column, w) = self.word("a count")?;
        let count = parse_number(w)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                self.error(
                    column,
                    format!("expected a count from 0 to {}, found '{w}'", u32::MAX),
                )
            })?;
        self.end(Op::OsFail { what, count })
    }

    fn thread(&self, column: usize, w: &str) -> Result<u8, ParseError> {
        let bad = || self.error(column, format!("expected a thread like t0, found '{w}'"));
        let digits = w.strip_prefix('t').ok_or_else(bad)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        match digits.parse::<u64>() {
            Ok(n) if (n as usize) < MAX_THREADS => Ok(n as u8),
            _ => Err(self.error(
                column,
                format!("thread {w} out of range (max t{})", MAX_THREADS - 1),
            )),
        }
    }

    fn thread_op(&mut self, t: u8) -> Result<Option<Op>, ParseError> {
        let (column, verb) = self.word("an op (alloc, free, realloc, drain, collect or exit)")?;
        match verb {
            "alloc" => self.alloc(t),
            "free" => self.free(t),
            "realloc" => {
                let (column, w) = self.word("a handle like p1")?;
                let id = self.handle(column, w)?;
                let size = self.size()?;
                self.end(Op::Realloc { t, id, size })
            }
            "drain" => self.end(Op::Drain { t }),
            "collect" => self.end(Op::Collect { t }),
            "exit" => self.end(Op::Exit { t }),
            _ => Err(self.error(
                column,
                format!(
                    "unknown op '{verb}' (expected alloc, free, realloc, drain, collect or exit)"
                ),
            )),
        }
    }

    fn handle(&self, column: usize, w: &str) -> Result<u32, ParseError> {
        let bad = || self.error(column, format!("expected a handle like p12, found '{w}'"));
        let digits = w.strip_prefix('p').ok_or_else(bad)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        digits.parse::<u32>().map_err(|_| {
            self.error(
                column,
                format!("handle {w} out of range (max p{})", u32::MAX),
            )
        })
    }

    fn size(&mut self) -> Result<usize, ParseError> {
        let (column, w) = self.word("a size in bytes")?;
        let Some(size) = parse_number(w) else {
            return Err(self.error(column, format!("expected a size in bytes, found '{w}'")));
        };
        if size > MAX_TEXT_SIZE as u64 {
            return Err(self.error(
                column,
                format!("size {w} is too large (max {MAX_TEXT_SIZE})"),
            ));
        }
        Ok(size as usize)
    }

    fn alloc(&mut self, t: u8) -> Result<Option<Op>, ParseError> {
        let (column, w) = self.word("a handle like p1")?;
        let id = self.handle(column, w)?;
        let size = self.size()?;
        let mut align = None;
        let mut zeroed = false;
        while let Some((column, w)) = self.peek() {
            self.next += 1;
            if w == "zeroed" {
                if zeroed {
                    return Err(self.error(column, "duplicate 'zeroed'".to_string()));
                }
                zeroed = true;
            } else if let Some(value) = w.strip_prefix("align=") {
                if align.is_some() {
                    return Err(self.error(column, "duplicate 'align='".to_string()));
                }
                let value_column = column + "align=".len();
                let Some(a) = parse_number(value) else {
                    return Err(self.error(
                        value_column,
                        format!("expected an alignment in bytes, found '{value}'"),
                    ));
                };
                if a > MAX_TEXT_SIZE as u64 {
                    return Err(self.error(
                        value_column,
                        format!("alignment {value} is too large (max {MAX_TEXT_SIZE})"),
                    ));
                }
                if !a.is_power_of_two() {
                    return Err(
                        self.error(value_column, format!("alignment {a} is not a power of two"))
                    );
                }
                align = Some(a as usize);
            } else {
                return Err(self.error(
                    column,
                    format!("unknown alloc option '{w}' (expected align=N or zeroed)"),
                ));
            }
        }
        Ok(Some(Op::Alloc {
            t,
            id,
            size,
            align: align.unwrap_or(DEFAULT_ALIGN),
            zeroed,
        }))
    }

    fn free(&mut self, t: u8) -> Result<Option<Op>, ParseError> {
        let (column, w) = self.word("a handle like p1, p1+8 or 'foreign'")?;
        if w == "foreign" {
            return self.end(Op::FreeForeign { t });
        }
        let Some((handle, offset)) = w.split_once('+') else {
            let id = self.handle(column, w)?;
            return self.end(Op::Free { t, id });
        };
        let id = self.handle(column, handle)?;
        let offset_column = column + handle.chars().count() + 1;
        let Some(offset) = parse_number(offset) else {
            return Err(self.error(
                offset_column,
                format!("expected an offset in bytes after '+', found '{offset}'"),
            ));
        };
        if offset == 0 {
            return Err(self.error(
                offset_column,
                format!("interior offset must be positive, found '{w}'"),
            ));
        }
        if offset > MAX_TEXT_SIZE as u64 {
            return Err(self.error(
                offset_column,
                format!("interior offset {offset} is too large (max {MAX_TEXT_SIZE})"),
            ));
        }
        self.end(Op::FreeInterior {
            t,
            id,
            offset: offset as usize,
        })
    }
}

/// A decimal number (digits only), `None` if malformed or beyond `u64`.
fn parse_number(w: &str) -> Option<u64> {
    if w.is_empty() || !w.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    w.parse().ok()
}

/// The `# key: value` header comments at the top of a trace file, in order.
///
/// The header is the run of comment (and blank) lines before the first op.
/// One line may hold several pairs separated by three or more blanks:
/// `# found-by: fuzz alloc_ops   violates: I1`. A key is a single word of
/// letters, digits, `-`, `_` or `.`; text that is not a pair is ignored.
pub fn headers(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix('#') else {
            break;
        };
        for part in split_wide(comment.trim()) {
            let Some((key, value)) = part.split_once(':') else {
                continue;
            };
            let key = key.trim();
            let key_ok = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if key_ok {
                out.push((key.to_string(), value.trim().to_string()));
            }
        }
    }
    out
}

/// Splits at runs of three or more blanks, or at any tab.
fn split_wide(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut blank_start = None;
    let mut blanks = 0;
    let mut tab = false;
    for (i, c) in s.char_indices() {
        if c == ' ' || c == '\t' {
            if blank_start.is_none() {
                blank_start = Some(i);
            }
            blanks += 1;
            tab |= c == '\t';
        } else {
            if let Some(b) = blank_start.take() {
                if blanks >= 3 || tab {
                    parts.push(&s[start..b]);
                    start = i;
                }
            }
            blanks = 0;
            tab = false;
        }
    }
    parts.push(s[start..].trim_end());
    parts.retain(|p| !p.is_empty());
    parts
}

/// A trace file: the header pairs as `# key: value` lines, then the trace.
/// `headers(&with_headers(h, t)) == h` when no value holds three blanks in
/// a row or a tab, and `Trace::parse` of it gives `t` back.
pub fn with_headers(headers: &[(String, String)], trace: &Trace) -> String {
    let mut out = String::new();
    for (key, value) in headers {
        out.push_str(&format!("# {key}: {value}\n"));
    }
    out.push_str(&trace.to_string());
    out
}

#[cfg(test)]
#[path = "trace_tests.rs"]
mod tests;
