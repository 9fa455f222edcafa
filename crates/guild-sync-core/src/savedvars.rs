//! The SavedVariables parser: a WoW SavedVariables file (`Name = <Lua table constructor>` per
//! global) read as *data*, never executed. It is a small recursive-descent parser over bytes that
//! accepts exactly the Lua expressions a serializer writes — literals (`nil`, `true`, `false`,
//! numbers in every Lua form, short and long strings with every escape) and table constructors
//! (`[key] = v`, `key = v`, positional `v`) — plus comments anywhere whitespace may appear.
//!
//! The file comes from a gaming PC and is untrusted: input is capped at [`MAX_INPUT_BYTES`],
//! nesting at [`MAX_DEPTH`] (so hostile input cannot overflow the stack), nothing here can loop
//! without consuming input, and every malformed input yields a [`SavedVarsError`] with the line
//! and column, never a panic.
//!
//! Memory is bounded too, not only time and stack. Each value costs ~64 bytes of tree for 2-3
//! bytes of text (`{},`), so a 15.7 MB file of empty tables once peaked at 1.83 GB. The tree is
//! therefore capped at [`MAX_VALUES`] values and each string at [`MAX_STRING_BYTES`]: a file
//! within the size limit stays within ~64 MB, and past the caps it is refused with
//! [`SavedVarsError::TooComplex`]. What the data *means* (the PATTSync export) is [`crate::addon`]'s job.

use std::fmt;

/// Largest SavedVariables file accepted, in bytes (a 1,000-member export is about 400 KB).
pub const MAX_INPUT_BYTES: usize = 16 * 1024 * 1024;

/// Deepest table nesting accepted. The PATTSync export needs 4; WoW itself caps far lower than
/// the stack would.
pub const MAX_DEPTH: usize = 64;

/// Most values (table keys and values, tables included) one file may hold. A 1,000-member
/// PATTSync export holds about 30,000 and the export's own cap of 5,000 members about 150,000;
/// at ~128 bytes a value (an entry plus its share of a growing table) this keeps the tree
/// under ~32 MB.
pub const MAX_VALUES: usize = 250_000;

/// Longest string accepted, in bytes. A PATTSync export's longest text is a 512-character note.
pub const MAX_STRING_BYTES: usize = 64 * 1024;

/// A Lua value as written in a SavedVariables file.
#[derive(Debug, Clone, PartialEq)]
pub enum LuaValue {
    Nil,
    Boolean(bool),
    /// A numeral without fraction or exponent that fits in 64 bits (Lua 5.3's integer subtype).
    Integer(i64),
    Number(f64),
    /// Lua strings are bytes; WoW writes UTF-8. Invalid UTF-8 (e.g. from a `\ddd` escape) is
    /// replaced with U+FFFD rather than rejected, since notes are free text.
    String(String),
    Table(LuaTable),
}

/// A table key: Lua allows any non-nil value; data files use strings, integers, floats, booleans.
#[derive(Debug, Clone, PartialEq)]
pub enum LuaKey {
    Integer(i64),
    Number(f64),
    String(String),
    Boolean(bool),
}

/// A table constructor's entries in source order (positional entries get keys 1, 2, … as in Lua).
/// A key given twice keeps its last value on lookup, as Lua does.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LuaTable {
    pub entries: Vec<(LuaKey, LuaValue)>,
}

impl LuaTable {
    /// The value under a string key (the last one if repeated), treating `nil` as absent.
    pub fn get(&self, key: &str) -> Option<&LuaValue> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| matches!(k, LuaKey::String(s) if s == key))
            .map(|(_, v)| v)
            .filter(|v| !matches!(v, LuaValue::Nil))
    }

    /// The integer-keyed entries (positional or `[n] =`) sorted by key, `nil`s dropped: the
    /// list part of the table. WoW writes lists positionally with `-- [n]` comments, but a file
    /// edited by hand or another serializer may use explicit keys; both read the same.
    pub fn sequence(&self) -> Vec<(i64, &LuaValue)> {
        let mut items: Vec<(i64, &LuaValue)> = Vec::new();
        for (key, value) in &self.entries {
            let index = match key {
                LuaKey::Integer(i) => *i,
                LuaKey::Number(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => *f as i64,
                _ => continue,
            };
            items.push((index, value));
        }
        // Stable sort keeps source order among duplicates, so the last of them wins below.
        items.sort_by_key(|(i, _)| *i);
        let mut out: Vec<(i64, &LuaValue)> = Vec::with_capacity(items.len());
        for (index, value) in items {
            if let Some(last) = out.last_mut()
                && last.0 == index
            {
                *last = (index, value);
                continue;
            }
            out.push((index, value));
        }
        out.retain(|(_, v)| !matches!(v, LuaValue::Nil));
        out
    }
}

/// The globals a SavedVariables file assigns, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SavedVariables {
    pub globals: Vec<(String, LuaValue)>,
}

impl SavedVariables {
    /// A global's value (the last assignment wins, as when Lua runs the file).
    pub fn get(&self, name: &str) -> Option<&LuaValue> {
        self.globals
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
}

/// Why a SavedVariables file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SavedVarsError {
    #[error("the file is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// Within the size limit but holding more than the parser will build in memory.
    #[error(
        "line {line}: {what}; this is not a PATTSync export (the limits keep a hostile file from exhausting memory)"
    )]
    TooComplex { line: usize, what: String },
    /// `line` and `column` are 1-based; the column counts bytes.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
}

/// Parse a SavedVariables file: zero or more `Name = value` assignments (optionally separated
/// by `;`), with comments and whitespace anywhere between tokens. A UTF-8 byte-order mark is
/// skipped.
pub fn parse(input: &[u8]) -> Result<SavedVariables, SavedVarsError> {
    let bom = input.strip_prefix(b"\xEF\xBB\xBF").map_or(0, |_| 3);
    let mut parser = Parser::over(input, bom)?;
    let mut globals = Vec::new();
    loop {
        parser.skip_trivia()?;
        match parser.peek() {
            None => break,
            Some(b';') => {
                parser.pos += 1;
                continue;
            }
            Some(c) if is_name_start(c) => {}
            Some(_) => return Err(parser.error("expected a global variable name")),
        }
        let name_at = parser.pos;
        let name = parser.name();
        if is_reserved(&name) {
            return Err(parser.error_at(name_at, format!("`{name}` is a reserved word")));
        }
        parser.skip_trivia()?;
        parser.expect(b'=', "`=` after the global name")?;
        let value = parser.value(0)?;
        globals.push((name, value));
    }
    Ok(SavedVariables { globals })
}

/// Parse a single Lua value (a literal or a table constructor) that must fill the whole input.
pub fn parse_value(input: &[u8]) -> Result<LuaValue, SavedVarsError> {
    let mut parser = Parser::over(input, 0)?;
    let value = parser.value(0)?;
    parser.skip_trivia()?;
    if parser.peek().is_some() {
        return Err(parser.error("unexpected text after the value"));
    }
    Ok(value)
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    /// Values built so far, against [`MAX_VALUES`].
    values: usize,
}

impl<'a> Parser<'a> {
    /// A parser over `input` from byte `start`; input over [`MAX_INPUT_BYTES`] is refused before
    /// any of it is read.
    fn over(input: &'a [u8], start: usize) -> Result<Self, SavedVarsError> {
        if input.len() > MAX_INPUT_BYTES {
            return Err(SavedVarsError::TooLarge {
                size: input.len(),
                limit: MAX_INPUT_BYTES,
            });
        }
        Ok(Parser {
            src: input,
            pos: start,
            values: 0,
        })
    }
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

const RESERVED: &[&str] = &[
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
    "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
];

fn is_reserved(name: &str) -> bool {
    RESERVED.contains(&name)
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.src.get(self.pos + offset).copied()
    }

    fn error(&self, message: impl Into<String>) -> SavedVarsError {
        self.error_at(self.pos, message)
    }

    /// Line and column are computed only when an error is built, so the happy path pays nothing.
    fn error_at(&self, at: usize, message: impl Into<String>) -> SavedVarsError {
        let at = at.min(self.src.len());
        let before = &self.src[..at];
        let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |i| i + 1);
        let mut message = message.into();
        match self.src.get(at) {
            None => message.push_str(" (found the end of the file)"),
            Some(&c) if c.is_ascii_graphic() => {
                message.push_str(&format!(" (found `{}`)", c as char));
            }
            Some(&c) => message.push_str(&format!(" (found byte 0x{c:02X})")),
        }
        SavedVarsError::Syntax {
            line,
            column: at - line_start + 1,
            message,
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), SavedVarsError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(format!("expected {what}")))
        }
    }

    /// Skip whitespace and comments (`-- line`, `--[[ long ]]`, `--[==[ long ]==]`).
    fn skip_trivia(&mut self) -> Result<(), SavedVarsError> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n' | b'\x0B' | b'\x0C') => self.pos += 1,
                Some(b'-') if self.peek_at(1) == Some(b'-') => {
                    let start = self.pos;
                    self.pos += 2;
                    if let Some(level) = self.long_bracket_level() {
                        self.long_bracket_body(level, start, "comment")?;
                    } else {
                        while let Some(c) = self.peek() {
                            if c == b'\n' {
                                break;
                            }
                            self.pos += 1;
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// At `[` followed by `=`* and `[`: consume the opening bracket and return its level.
    fn long_bracket_level(&mut self) -> Option<usize> {
        if self.peek() != Some(b'[') {
            return None;
        }
        let mut level = 0;
        while self.peek_at(1 + level) == Some(b'=') {
            level += 1;
        }
        if self.peek_at(1 + level) == Some(b'[') {
            self.pos += level + 2;
            Some(level)
        } else {
            None
        }
    }

    /// The body of a long string or comment after its opening bracket, up to the matching close.
    fn long_bracket_body(
        &mut self,
        level: usize,
        start: usize,
        what: &str,
    ) -> Result<&[u8], SavedVarsError> {
        // A newline right after the opening bracket is not part of the string (Lua manual §3.1).
        match (self.peek(), self.peek_at(1)) {
            (Some(b'\r'), Some(b'\n')) | (Some(b'\n'), Some(b'\r')) => self.pos += 2,
            (Some(b'\r' | b'\n'), _) => self.pos += 1,
            _ => {}
        }
        let body_start = self.pos;
        while self.pos < self.src.len() {
            if self.src[self.pos] == b']' {
                let mut eq = 0;
                while self.peek_at(1 + eq) == Some(b'=') {
                    eq += 1;
                }
                if eq == level && self.peek_at(1 + eq) == Some(b']') {
                    let body = &self.src[body_start..self.pos];
                    self.pos += level + 2;
                    return Ok(body);
                }
                self.pos += 1 + eq;
            } else {
                self.pos += 1;
            }
        }
        Err(self.error_at(start, format!("unfinished long {what}")))
    }

    fn name(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(is_name_char) {
            self.pos += 1;
        }
        // Names are ASCII by construction, so this never allocates a replacement.
        String::from_utf8_lossy(&self.src[start..self.pos]).into_owned()
    }

    /// Count one more value against [`MAX_VALUES`].
    fn count_value(&mut self) -> Result<(), SavedVarsError> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(self.too_complex(format!("more than {MAX_VALUES} values")));
        }
        Ok(())
    }

    fn too_complex(&self, what: String) -> SavedVarsError {
        let at = self.pos.min(self.src.len());
        SavedVarsError::TooComplex {
            line: self.src[..at].iter().filter(|&&c| c == b'\n').count() + 1,
            what,
        }
    }

    /// Bytes as a string: valid UTF-8 is moved, not copied (a copy would double the peak for
    /// long strings).
    fn string_from(&self, bytes: Vec<u8>) -> Result<String, SavedVarsError> {
        if bytes.len() > MAX_STRING_BYTES {
            return Err(self.too_complex(format!("a string longer than {MAX_STRING_BYTES} bytes")));
        }
        Ok(String::from_utf8(bytes)
            .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned()))
    }

    fn value(&mut self, depth: usize) -> Result<LuaValue, SavedVarsError> {
        self.skip_trivia()?;
        self.count_value()?;
        match self.peek() {
            None => Err(self.error("expected a value")),
            Some(b'{') => self.table(depth + 1).map(LuaValue::Table),
            Some(b'"' | b'\'') => self.short_string().map(LuaValue::String),
            Some(b'[') => {
                let start = self.pos;
                match self.long_bracket_level() {
                    Some(level) => {
                        let body = self.long_bracket_body(level, start, "string")?;
                        if body.len() > MAX_STRING_BYTES {
                            return Err(self.too_complex(format!(
                                "a string longer than {MAX_STRING_BYTES} bytes"
                            )));
                        }
                        let body = body.to_vec();
                        self.string_from(body).map(LuaValue::String)
                    }
                    None => Err(self.error("expected a value")),
                }
            }
            Some(b'-') => {
                self.pos += 1;
                self.skip_trivia()?;
                match self.number()? {
                    LuaValue::Integer(i) => Ok(match i.checked_neg() {
                        Some(n) => LuaValue::Integer(n),
                        None => LuaValue::Number(-(i as f64)),
                    }),
                    LuaValue::Number(n) => Ok(LuaValue::Number(-n)),
                    _ => Err(self.error("expected a number after `-`")),
                }
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => self.number(),
            Some(c) if is_name_start(c) => {
                let start = self.pos;
                let word = self.name();
                match word.as_str() {
                    "nil" => Ok(LuaValue::Nil),
                    "true" => Ok(LuaValue::Boolean(true)),
                    "false" => Ok(LuaValue::Boolean(false)),
                    // `math.huge` and friends are not literals; refuse rather than evaluate.
                    _ => Err(self.error_at(
                        start,
                        format!("`{word}` is not a literal value (the file is read as data)"),
                    )),
                }
            }
            Some(_) => Err(self.error("expected a value")),
        }
    }

    fn table(&mut self, depth: usize) -> Result<LuaTable, SavedVarsError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("tables nested deeper than {MAX_DEPTH} levels")));
        }
        let open = self.pos;
        self.pos += 1; // `{`
        let mut table = LuaTable::default();
        let mut next_index: i64 = 1;
        loop {
            self.skip_trivia()?;
            match self.peek() {
                None => return Err(self.error_at(open, "unclosed `{`")),
                Some(b'}') => {
                    self.pos += 1;
                    // A growing Vec holds up to twice what it needs; the tree lives until the
                    // export is read, so give the slack back.
                    table.entries.shrink_to_fit();
                    return Ok(table);
                }
                _ => {}
            }
            let entry_start = self.pos;
            if self.peek() == Some(b'[') && !matches!(self.peek_at(1), Some(b'[' | b'=')) {
                // `[key] = value`
                self.pos += 1;
                let key_value = self.value(depth)?;
                let key = match key_value {
                    LuaValue::Nil => return Err(self.error_at(entry_start, "a table key is nil")),
                    LuaValue::Number(n) if n.is_nan() => {
                        return Err(self.error_at(entry_start, "a table key is NaN"));
                    }
                    LuaValue::Table(_) => {
                        return Err(self.error_at(entry_start, "a table key is a table"));
                    }
                    LuaValue::Boolean(b) => LuaKey::Boolean(b),
                    LuaValue::Integer(i) => LuaKey::Integer(i),
                    LuaValue::Number(n) => LuaKey::Number(n),
                    LuaValue::String(s) => LuaKey::String(s),
                };
                self.skip_trivia()?;
                self.expect(b']', "`]` after the table key")?;
                self.skip_trivia()?;
                self.expect(b'=', "`=` after `[key]`")?;
                let value = self.value(depth)?;
                table.entries.push((key, value));
            } else if self.peek().is_some_and(is_name_start) && self.name_then_equals() {
                // `name = value`
                self.count_value()?;
                let name = self.name();
                self.skip_trivia()?;
                self.expect(b'=', "`=` after the field name")?;
                let value = self.value(depth)?;
                table.entries.push((LuaKey::String(name), value));
            } else {
                let value = self.value(depth)?;
                table.entries.push((LuaKey::Integer(next_index), value));
                next_index = next_index.saturating_add(1);
            }
            self.skip_trivia()?;
            match self.peek() {
                Some(b',' | b';') => self.pos += 1,
                Some(b'}') => {}
                None => return Err(self.error_at(open, "unclosed `{`")),
                Some(_) => return Err(self.error("expected `,`, `;` or `}` in the table")),
            }
        }
    }

    /// Looking at a name: is it a `name = …` field (not `nil`/`true`/`false` or `==`)?
    fn name_then_equals(&mut self) -> bool {
        let saved = self.pos;
        let name = self.name();
        let result = !is_reserved(&name)
            && self.skip_trivia().is_ok()
            && self.peek() == Some(b'=')
            && self.peek_at(1) != Some(b'=');
        self.pos = saved;
        result
    }

    fn short_string(&mut self) -> Result<String, SavedVarsError> {
        let start = self.pos;
        let quote = self.src[self.pos];
        self.pos += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error_at(start, "unfinished string"));
            };
            match c {
                _ if c == quote => {
                    self.pos += 1;
                    return self.string_from(out);
                }
                b'\n' | b'\r' => return Err(self.error("unfinished string (line break)")),
                b'\\' => {
                    self.pos += 1;
                    self.escape(&mut out)?;
                }
                _ => {
                    // Copy the run of plain bytes at once.
                    let run_start = self.pos;
                    while let Some(b) = self.peek() {
                        if b == quote || b == b'\\' || b == b'\n' || b == b'\r' {
                            break;
                        }
                        self.pos += 1;
                    }
                    if out.len() + (self.pos - run_start) > MAX_STRING_BYTES {
                        return Err(self.too_complex(format!(
                            "a string longer than {MAX_STRING_BYTES} bytes"
                        )));
                    }
                    out.extend_from_slice(&self.src[run_start..self.pos]);
                }
            }
        }
    }

    /// One escape sequence after `\` (Lua 5.1 to 5.4 forms).
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), SavedVarsError> {
        let at = self.pos - 1;
        let Some(c) = self.peek() else {
            return Err(self.error_at(at, "unfinished escape sequence"));
        };
        self.pos += 1;
        match c {
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0C),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0B),
            b'\\' | b'"' | b'\'' => out.push(c),
            b'\n' | b'\r' => {
                // An escaped line break is a line break; `\r\n` and `\n\r` count as one.
                if matches!(self.peek(), Some(d) if (d == b'\n' || d == b'\r') && d != c) {
                    self.pos += 1;
                }
                out.push(b'\n');
            }
            b'z' => {
                while self.peek().is_some_and(|d| d.is_ascii_whitespace()) {
                    self.pos += 1;
                }
            }
            b'x' => {
                let mut value = 0u8;
                for _ in 0..2 {
                    let Some(d) = self.peek().and_then(|d| (d as char).to_digit(16)) else {
                        return Err(self.error_at(at, "`\\x` needs two hexadecimal digits"));
                    };
                    value = value * 16 + d as u8;
                    self.pos += 1;
                }
                out.push(value);
            }
            b'0'..=b'9' => {
                let mut value: u32 = u32::from(c - b'0');
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ b'0'..=b'9') => {
                            value = value * 10 + u32::from(d - b'0');
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                let Ok(byte) = u8::try_from(value) else {
                    return Err(self.error_at(at, "decimal escape larger than 255"));
                };
                out.push(byte);
            }
            b'u' => {
                if self.peek() != Some(b'{') {
                    return Err(self.error_at(at, "`\\u` needs `{`"));
                }
                self.pos += 1;
                let mut value: u32 = 0;
                let mut digits = 0;
                while let Some(d) = self.peek().and_then(|d| (d as char).to_digit(16)) {
                    value = value.saturating_mul(16).saturating_add(d);
                    digits += 1;
                    self.pos += 1;
                }
                if digits == 0 || self.peek() != Some(b'}') {
                    return Err(self.error_at(at, "malformed `\\u{…}` escape"));
                }
                self.pos += 1;
                let Some(ch) = char::from_u32(value) else {
                    return Err(self.error_at(at, "`\\u{…}` is not a Unicode scalar value"));
                };
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            _ => return Err(self.error_at(at, "invalid escape sequence")),
        }
        Ok(())
    }

    /// A numeral: decimal integer or float (`3`, `3.0`, `.5`, `5.`, `1e10`, `2E-3`) or
    /// hexadecimal (`0xFF`, `0x1p4`, `0xA.8P-1`). Integers that do not fit 64 bits become
    /// floats (decimal) or wrap (hexadecimal), as in Lua 5.3+.
    fn number(&mut self) -> Result<LuaValue, SavedVarsError> {
        let start = self.pos;
        let hex = self.peek() == Some(b'0') && matches!(self.peek_at(1), Some(b'x' | b'X'));
        if hex {
            self.pos += 2;
            return self.hex_number(start);
        }
        let mut is_float = false;
        let mut digits = 0;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            digits += 1;
        }
        if self.peek() == Some(b'.') {
            is_float = true;
            self.pos += 1;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
                digits += 1;
            }
        }
        if digits == 0 {
            return Err(self.error_at(start, "malformed number"));
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            is_float = true;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.error_at(start, "malformed number (exponent)"));
            }
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        if self.peek().is_some_and(is_name_char) || self.peek() == Some(b'.') {
            return Err(self.error_at(start, "malformed number"));
        }
        // The slice holds only ASCII digits, `.`, `e`, sign: always valid UTF-8.
        let text = std::str::from_utf8(&self.src[start..self.pos])
            .map_err(|_| self.error_at(start, "malformed number"))?;
        if !is_float && let Ok(i) = text.parse::<i64>() {
            return Ok(LuaValue::Integer(i));
        }
        text.parse::<f64>()
            .map(LuaValue::Number)
            .map_err(|_| self.error_at(start, "malformed number"))
    }

    fn hex_number(&mut self, start: usize) -> Result<LuaValue, SavedVarsError> {
        let mut mantissa: u64 = 0;
        let mut float_mantissa: f64 = 0.0;
        let mut exponent: i64 = 0;
        let mut digits = 0;
        let mut is_float = false;
        while let Some(d) = self.peek().and_then(|c| (c as char).to_digit(16)) {
            mantissa = mantissa.wrapping_mul(16).wrapping_add(u64::from(d));
            float_mantissa = float_mantissa * 16.0 + f64::from(d);
            digits += 1;
            self.pos += 1;
        }
        if self.peek() == Some(b'.') {
            is_float = true;
            self.pos += 1;
            while let Some(d) = self.peek().and_then(|c| (c as char).to_digit(16)) {
                float_mantissa = float_mantissa * 16.0 + f64::from(d);
                exponent -= 4;
                digits += 1;
                self.pos += 1;
            }
        }
        if digits == 0 {
            return Err(self.error_at(start, "malformed hexadecimal number"));
        }
        if matches!(self.peek(), Some(b'p' | b'P')) {
            is_float = true;
            self.pos += 1;
            let negative = match self.peek() {
                Some(b'-') => {
                    self.pos += 1;
                    true
                }
                Some(b'+') => {
                    self.pos += 1;
                    false
                }
                _ => false,
            };
            let mut value: i64 = 0;
            let mut exp_digits = 0;
            while let Some(d @ b'0'..=b'9') = self.peek() {
                value = value.saturating_mul(10).saturating_add(i64::from(d - b'0'));
                exp_digits += 1;
                self.pos += 1;
            }
            if exp_digits == 0 {
                return Err(self.error_at(start, "malformed hexadecimal exponent"));
            }
            exponent = exponent.saturating_add(if negative { -value } else { value });
        }
        if self.peek().is_some_and(is_name_char) || self.peek() == Some(b'.') {
            return Err(self.error_at(start, "malformed hexadecimal number"));
        }
        if is_float {
            let exp = i32::try_from(exponent.clamp(-10_000, 10_000)).unwrap_or(0);
            Ok(LuaValue::Number(float_mantissa * 2f64.powi(exp)))
        } else {
            // Lua wraps hexadecimal integers modulo 2^64.
            Ok(LuaValue::Integer(mantissa as i64))
        }
    }
}

impl fmt::Display for LuaValue {
    /// A short description for error messages ("a string", "a table", …).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LuaValue::Nil => "nil",
            LuaValue::Boolean(_) => "a boolean",
            LuaValue::Integer(_) | LuaValue::Number(_) => "a number",
            LuaValue::String(_) => "a string",
            LuaValue::Table(_) => "a table",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value(src: &str) -> LuaValue {
        parse_value(src.as_bytes()).unwrap_or_else(|e| panic!("{src:?}: {e}"))
    }

    fn syntax_error(src: &[u8]) -> (usize, usize, String) {
        match parse(src) {
            Err(SavedVarsError::Syntax {
                line,
                column,
                message,
            }) => (line, column, message),
            other => panic!("{:?}: expected a syntax error, got {other:?}", src),
        }
    }

    #[test]
    fn numbers_in_every_lua_form_are_read() {
        let cases: &[(&str, LuaValue)] = &[
            ("0", LuaValue::Integer(0)),
            ("42", LuaValue::Integer(42)),
            ("-42", LuaValue::Integer(-42)),
            ("- 7", LuaValue::Integer(-7)),
            ("3.25", LuaValue::Number(3.25)),
            (".5", LuaValue::Number(0.5)),
            ("5.", LuaValue::Number(5.0)),
            ("1e3", LuaValue::Number(1000.0)),
            ("2E-2", LuaValue::Number(0.02)),
            ("1.5e+2", LuaValue::Number(150.0)),
            ("0xff", LuaValue::Integer(255)),
            ("0XA", LuaValue::Integer(10)),
            ("-0x10", LuaValue::Integer(-16)),
            ("0x1p4", LuaValue::Number(16.0)),
            ("0xA.8p0", LuaValue::Number(10.5)),
            ("0x.1P-2", LuaValue::Number(0.015625)),
            ("9223372036854775807", LuaValue::Integer(i64::MAX)),
            (
                "-9223372036854775808",
                LuaValue::Number(-9223372036854775808.0),
            ),
            (
                "18446744073709551616",
                LuaValue::Number(18446744073709551616.0),
            ),
            ("0xffffffffffffffff", LuaValue::Integer(-1)),
            ("1700000000", LuaValue::Integer(1_700_000_000)),
        ];
        for (src, expected) in cases {
            assert_eq!(&value(src), expected, "{src}");
        }
    }

    #[test]
    fn literals_nil_true_false_are_read() {
        assert_eq!(value("nil"), LuaValue::Nil);
        assert_eq!(value("true"), LuaValue::Boolean(true));
        assert_eq!(value("false"), LuaValue::Boolean(false));
    }

    /// Each `(source, expected)`: the source is read as a string with that value.
    fn assert_strings(cases: &[(&str, &str)]) {
        for (src, expected) in cases {
            assert_eq!(
                value(src),
                LuaValue::String((*expected).to_owned()),
                "{src}"
            );
        }
    }

    #[test]
    fn short_strings_decode_every_escape() {
        let cases: &[(&str, &str)] = &[
            (r#""plain""#, "plain"),
            (r#"'single'"#, "single"),
            (r#""a\"b""#, "a\"b"),
            (r#"'it\'s'"#, "it's"),
            (r#""back\\slash""#, "back\\slash"),
            (r#""\a\b\f\n\r\t\v""#, "\x07\x08\x0C\n\r\t\x0B"),
            (r#""\65\066\0671""#, "ABC1"),
            (r#""\0""#, "\0"),
            (r#""\x41\x62""#, "Ab"),
            (r#""\u{48}\u{E9}\u{1F600}""#, "Hé😀"),
            ("\"a\\z   \n  b\"", "ab"),
            ("\"line\\\nnext\"", "line\nnext"),
            (r#""\195\177and\195\186""#, "ñandú"),
            ("\"Zoë — ünïcode\"", "Zoë — ünïcode"),
            (r#""\255""#, "\u{FFFD}"),
        ];
        assert_strings(cases);
    }

    #[test]
    fn long_strings_keep_their_contents_verbatim() {
        let cases: &[(&str, &str)] = &[
            ("[[hello]]", "hello"),
            ("[[\nfirst newline dropped]]", "first newline dropped"),
            ("[==[has ]] and ]=] inside]==]", "has ]] and ]=] inside"),
            ("[[no \\n escapes]]", "no \\n escapes"),
            ("[=[\r\nwindows]=]", "windows"),
        ];
        assert_strings(cases);
    }

    #[test]
    fn tables_accept_bracket_keys_name_keys_and_positional_entries() {
        let LuaValue::Table(t) = value(
            r#"{ ["a key"] = 1, name = "x"; "first", [10] = true, "second", [2.5] = 0, [false] = 1, }"#,
        ) else {
            panic!("not a table")
        };
        assert_eq!(t.get("a key"), Some(&LuaValue::Integer(1)));
        assert_eq!(t.get("name"), Some(&LuaValue::String("x".into())));
        let seq: Vec<(i64, LuaValue)> = t
            .sequence()
            .into_iter()
            .map(|(i, v)| (i, v.clone()))
            .collect();
        assert_eq!(
            seq,
            vec![
                (1, LuaValue::String("first".into())),
                (2, LuaValue::String("second".into())),
                (10, LuaValue::Boolean(true)),
            ]
        );
        assert!(
            t.entries
                .contains(&(LuaKey::Number(2.5), LuaValue::Integer(0)))
        );
        assert!(
            t.entries
                .contains(&(LuaKey::Boolean(false), LuaValue::Integer(1)))
        );
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value_and_nil_means_absent() {
        let LuaValue::Table(t) = value(r#"{ a = 1, a = 2, b = nil, [1] = "x", [1] = "y" }"#) else {
            panic!("not a table")
        };
        assert_eq!(t.get("a"), Some(&LuaValue::Integer(2)));
        assert_eq!(t.get("b"), None);
        assert_eq!(t.sequence(), vec![(1, &LuaValue::String("y".into()))]);
    }

    #[test]
    fn comments_are_skipped_wherever_whitespace_may_be() {
        let src = b"-- header\n--[[ block\n comment ]] A = { -- [1]\n 1, --[==[ x ]] ]==] 2 } ; B --x\n = [[s]] -- tail";
        let sv = parse(src).expect("parses");
        assert_eq!(sv.globals.len(), 2);
        let LuaValue::Table(a) = sv.get("A").expect("A") else {
            panic!()
        };
        assert_eq!(a.sequence().len(), 2);
        assert_eq!(sv.get("B"), Some(&LuaValue::String("s".into())));
    }

    #[test]
    fn a_file_written_like_wow_writes_savedvariables_parses() {
        let src = "\nPATTSyncDB = {\n\t[\"lastExportTime\"] = 1700000000,\n\t[\"lastExport\"] = {\n\t\t[\"characters\"] = {\n\t\t\t{\n\t\t\t\t[\"name\"] = \"Trogmoon\",\n\t\t\t\t[\"note\"] = \"Discord: trog\",\n\t\t\t}, -- [1]\n\t\t},\n\t},\n}\nOtherDB = nil\n";
        let sv = parse(src.as_bytes()).expect("parses");
        assert_eq!(sv.globals.len(), 2);
        assert_eq!(sv.get("OtherDB"), Some(&LuaValue::Nil));
    }

    #[test]
    fn an_empty_file_or_one_with_only_comments_has_no_globals() {
        for src in ["", "   \n", "-- nothing\n", "\u{FEFF}"] {
            assert_eq!(parse(src.as_bytes()).expect(src).globals, vec![], "{src:?}");
        }
    }

    #[test]
    fn malformed_input_is_an_error_with_line_and_column() {
        let cases: &[(&[u8], usize, usize, &str)] = &[
            (b"A = {", 1, 5, "unclosed"),
            (b"A = { 1 2 }", 1, 9, "expected `,`"),
            (b"A =\n  \"open", 2, 3, "unfinished string"),
            (b"A = \"a\nb\"", 1, 7, "line break"),
            (b"A = [[never closed", 1, 5, "unfinished long string"),
            (b"--[[ never closed", 1, 1, "unfinished long comment"),
            (b"A = os.exit()", 1, 5, "not a literal"),
            (b"A = function() end", 1, 5, "not a literal"),
            (b"A = { [nil] = 1 }", 1, 7, "nil"),
            (b"A = 12abc", 1, 5, "malformed number"),
            (b"A = 1e", 1, 5, "exponent"),
            (b"A = 0x", 1, 5, "hexadecimal"),
            (b"A = \"\\q\"", 1, 6, "invalid escape"),
            (b"A = \"\\256\"", 1, 6, "larger than 255"),
            (b"A = \"\\u{110000}\"", 1, 6, "Unicode"),
            (b"A = \"\\xZZ\"", 1, 6, "hexadecimal digits"),
            (b"A 1", 1, 3, "`=`"),
            (b"1 = 2", 1, 1, "global variable name"),
            (b"local A = 1", 1, 1, "reserved"),
            (b"A = ", 1, 5, "expected a value"),
            (b"A = {}\n\n  }", 3, 3, "global variable name"),
            (b"A = { x = }", 1, 11, "expected a value"),
            (b"A = - \"s\"", 1, 7, "malformed number"),
        ];
        for (src, line, column, needle) in cases {
            let (l, c, message) = syntax_error(src);
            assert_eq!(
                (l, c),
                (*line, *column),
                "{:?}: {message}",
                String::from_utf8_lossy(src)
            );
            assert!(
                message.contains(needle),
                "{:?}: {message:?} should mention {needle:?}",
                String::from_utf8_lossy(src)
            );
        }
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused_without_overflowing_the_stack() {
        let deep = format!(
            "A = {}{}",
            "{".repeat(MAX_DEPTH + 1),
            "}".repeat(MAX_DEPTH + 1)
        );
        assert!(syntax_error(deep.as_bytes()).2.contains("nested deeper"));
        let ok = format!("A = {}{}", "{".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
        let hostile = format!("A = {}", "{".repeat(1_000_000));
        assert!(parse(hostile.as_bytes()).is_err());
    }

    #[test]
    fn input_over_the_size_limit_is_refused_before_parsing() {
        let big = vec![b' '; MAX_INPUT_BYTES + 1];
        assert_eq!(
            parse(&big),
            Err(SavedVarsError::TooLarge {
                size: MAX_INPUT_BYTES + 1,
                limit: MAX_INPUT_BYTES
            })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn lua_flavoured_noise_never_panics(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("{"), Just("}"), Just("["), Just("]"), Just("="), Just(","), Just(";"),
                    Just("\""), Just("'"), Just("\\"), Just("--"), Just("[["), Just("]]"),
                    Just("[=["), Just("]=]"), Just("\n"), Just("A"), Just("nil"), Just("0x"),
                    Just("1e"), Just("."), Just("-"), Just("\\u{"), Just("\\x"), Just("\\9"),
                    Just("9"), Just(" "), Just("p"),
                ],
                0..200,
            )
        ) {
            let src = parts.concat();
            let _ = parse(src.as_bytes());
            let _ = parse(format!("A = {src}").as_bytes());
        }

        #[test]
        fn integers_round_trip(n in any::<i64>()) {
            let parsed = parse_value(n.to_string().as_bytes()).expect("parses");
            if n == i64::MIN {
                prop_assert_eq!(parsed, LuaValue::Number(n as f64));
            } else {
                prop_assert_eq!(parsed, LuaValue::Integer(n));
            }
        }

        #[test]
        fn strings_round_trip_through_decimal_escapes(s in ".{0,40}") {
            let escaped: String = s.bytes().map(|b| format!("\\{b}")).collect();
            let parsed = parse_value(format!("\"{escaped}\"").as_bytes()).expect("parses");
            prop_assert_eq!(parsed, LuaValue::String(s));
        }
    }
}
