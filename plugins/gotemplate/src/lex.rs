//! The lexer: Go text/template's tokens, with its rules for delimiters, trim markers
//! (`{{- ` and ` -}}`), comments, quoted strings, characters and numbers.

use crate::ParseError;

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    Text(String),
    LeftDelim,
    RightDelim,
    Space,
    Ident(String),
    /// `.name` (without the dot).
    Field(String),
    /// `$` or `$name` (with the dollar).
    Variable(String),
    Dot,
    /// A quoted or raw string: its source text (for messages) and its value.
    Str(String, Vec<u8>),
    /// A character constant: its source text and its code point.
    Char(String, i64),
    Number(String),
    Bool(bool),
    Nil,
    Pipe,
    LeftParen,
    RightParen,
    Declare,
    Assign,
    Comma,
    Keyword(Kw),
    Eof,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kw {
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Range,
    Template,
    With,
}

#[derive(Clone, Debug)]
pub struct Item {
    pub tok: Tok,
    /// Byte offset in the template text.
    pub pos: usize,
    /// 1-based line.
    pub line: usize,
}

pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    left: &'a str,
    right: &'a str,
    items: Vec<Item>,
    paren_depth: usize,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

const LEFT_COMMENT: &str = "/*";
const RIGHT_COMMENT: &str = "*/";

impl<'a> Lexer<'a> {
    pub fn lex(src: &'a str, left: &'a str, right: &'a str) -> Result<Vec<Item>, ParseError> {
        let mut l = Lexer {
            src,
            pos: 0,
            left,
            right,
            items: Vec::new(),
            paren_depth: 0,
        };
        l.run()?;
        Ok(l.items)
    }

    fn line_at(&self, pos: usize) -> usize {
        let b = self.src.as_bytes();
        1 + b[..pos.min(b.len())]
            .iter()
            .filter(|c| **c == b'\n')
            .count()
    }

    /// Where `part` (a slice of the source) starts in the source.
    fn offset_of(&self, part: &str) -> usize {
        part.as_ptr() as usize - self.src.as_ptr() as usize
    }

    fn emit(&mut self, tok: Tok, pos: usize) {
        let line = self.line_at(pos);
        self.items.push(Item { tok, pos, line });
    }

    fn err(&self, msg: impl Into<String>) -> ParseError {
        ParseError {
            line: self.line_at(self.pos),
            message: msg.into(),
        }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// At the right delimiter, possibly trim-marked: Some(trim).
    fn at_right_delim(&self) -> Option<bool> {
        let r = self.rest().as_bytes();
        if r.len() >= 2
            && is_space(r[0])
            && r[1] == b'-'
            && self.rest()[2..].starts_with(self.right)
        {
            return Some(true);
        }
        if self.rest().starts_with(self.right) {
            return Some(false);
        }
        None
    }

    fn run(&mut self) -> Result<(), ParseError> {
        let mut trim_next_text = false;
        loop {
            // Text up to the next left delimiter.
            let start = self.pos;
            let next = self.rest().find(self.left).map(|i| self.pos + i);
            let end = next.unwrap_or(self.src.len());
            let mut text = &self.src[start..end];
            if trim_next_text {
                text = text.trim_start_matches([' ', '\t', '\r', '\n']);
            }
            let Some(delim_pos) = next else {
                if !text.is_empty() {
                    let p = self.offset_of(text);
                    self.emit(Tok::Text(text.to_string()), p);
                }
                self.pos = self.src.len();
                self.emit(Tok::Eof, self.pos);
                return Ok(());
            };
            let after = delim_pos + self.left.len();
            let trim_left = {
                let b = self.src.as_bytes();
                b.len() >= after + 2 && b[after] == b'-' && is_space(b[after + 1])
            };
            if trim_left {
                text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            }
            if !text.is_empty() {
                let p = self.offset_of(text);
                self.emit(Tok::Text(text.to_string()), p);
            }
            self.pos = after + if trim_left { 2 } else { 0 };
            if self.rest().starts_with(LEFT_COMMENT) {
                trim_next_text = self.comment()?;
                continue;
            }
            self.emit(Tok::LeftDelim, delim_pos);
            self.paren_depth = 0;
            trim_next_text = self.inside_action()?;
        }
    }

    /// A comment; returns whether the closing delimiter trims.
    fn comment(&mut self) -> Result<bool, ParseError> {
        let Some(i) = self.rest().find(RIGHT_COMMENT) else {
            return Err(self.err("unclosed comment"));
        };
        self.pos += i + RIGHT_COMMENT.len();
        let Some(trim) = self.at_right_delim() else {
            return Err(self.err("comment ends before closing delimiter"));
        };
        self.pos += self.right.len() + if trim { 2 } else { 0 };
        Ok(trim)
    }

    /// The inside of an action; returns whether the closing delimiter trims.
    fn inside_action(&mut self) -> Result<bool, ParseError> {
        loop {
            if let Some(trim) = self.at_right_delim() {
                if self.paren_depth > 0 {
                    return Err(self.err("unclosed left paren"));
                }
                let p = self.pos + if trim { 2 } else { 0 };
                self.emit(Tok::RightDelim, p);
                self.pos = p + self.right.len();
                return Ok(trim);
            }
            let start = self.pos;
            let Some(c) = self.peek() else {
                return Err(self.err("unclosed action"));
            };
            match c {
                ' ' | '\t' | '\r' | '\n' => {
                    let mut n = 0;
                    while self
                        .peek()
                        .is_some_and(|c| is_space(c as u8) && c.is_ascii())
                    {
                        self.pos += 1;
                        n += 1;
                    }
                    // A space before a trim-marked right delimiter belongs to the marker.
                    self.pos -= 1;
                    if self.at_right_delim() == Some(true) {
                        if n > 1 {
                            self.emit(Tok::Space, start);
                        }
                    } else {
                        self.pos += 1;
                        self.emit(Tok::Space, start);
                    }
                }
                '=' => {
                    self.pos += 1;
                    self.emit(Tok::Assign, start);
                }
                ':' => {
                    self.pos += 1;
                    if self.peek() != Some('=') {
                        return Err(self.err("expected :="));
                    }
                    self.pos += 1;
                    self.emit(Tok::Declare, start);
                }
                '|' => {
                    self.pos += 1;
                    self.emit(Tok::Pipe, start);
                }
                '"' => self.quote()?,
                '`' => self.raw_quote()?,
                '\'' => self.char_const()?,
                '$' => self.field_or_variable(true)?,
                '.' => {
                    let next = self.src.as_bytes().get(self.pos + 1).copied();
                    if next.is_some_and(|b| b.is_ascii_digit()) {
                        self.number()?;
                    } else {
                        self.field_or_variable(false)?;
                    }
                }
                '+' | '-' | '0'..='9' => self.number()?,
                '(' => {
                    self.pos += 1;
                    self.paren_depth += 1;
                    self.emit(Tok::LeftParen, start);
                }
                ')' => {
                    self.pos += 1;
                    if self.paren_depth == 0 {
                        return Err(self.err("unexpected right paren"));
                    }
                    self.paren_depth -= 1;
                    self.emit(Tok::RightParen, start);
                }
                ',' => {
                    self.pos += 1;
                    self.emit(Tok::Comma, start);
                }
                c if is_alnum(c) => self.identifier()?,
                c => {
                    return Err(self.err(format!(
                        "unrecognized character in action: {}",
                        unicode_desc(c)
                    )));
                }
            }
        }
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if c.is_ascii() && is_space(c as u8) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            _ => self.rest().starts_with(self.right),
        }
    }

    fn alnum_run(&mut self) {
        while let Some(c) = self.peek() {
            if !is_alnum(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    fn identifier(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        self.alnum_run();
        let word = &self.src[start..self.pos];
        if !self.at_terminator() {
            let c = self.peek().unwrap_or(' ');
            return Err(self.err(format!("bad character {}", unicode_desc(c))));
        }
        let tok = match word {
            "block" => Tok::Keyword(Kw::Block),
            "break" => Tok::Keyword(Kw::Break),
            "continue" => Tok::Keyword(Kw::Continue),
            "define" => Tok::Keyword(Kw::Define),
            "else" => Tok::Keyword(Kw::Else),
            "end" => Tok::Keyword(Kw::End),
            "if" => Tok::Keyword(Kw::If),
            "range" => Tok::Keyword(Kw::Range),
            "template" => Tok::Keyword(Kw::Template),
            "with" => Tok::Keyword(Kw::With),
            "nil" => Tok::Nil,
            "true" => Tok::Bool(true),
            "false" => Tok::Bool(false),
            w => Tok::Ident(w.to_string()),
        };
        self.emit(tok, start);
        Ok(())
    }

    fn field_or_variable(&mut self, variable: bool) -> Result<(), ParseError> {
        let start = self.pos;
        self.pos += 1;
        if self.at_terminator() {
            self.emit(
                if variable {
                    Tok::Variable("$".into())
                } else {
                    Tok::Dot
                },
                start,
            );
            return Ok(());
        }
        let name_start = self.pos;
        self.alnum_run();
        if !self.at_terminator() {
            let c = self.peek().unwrap_or(' ');
            return Err(self.err(format!("bad character {}", unicode_desc(c))));
        }
        let tok = if variable {
            Tok::Variable(self.src[start..self.pos].to_string())
        } else {
            Tok::Field(self.src[name_start..self.pos].to_string())
        };
        self.emit(tok, start);
        Ok(())
    }

    fn accept(&mut self, set: &str) -> bool {
        if let Some(c) = self.peek()
            && set.contains(c)
        {
            self.pos += c.len_utf8();
            return true;
        }
        false
    }

    fn accept_run(&mut self, set: &str) {
        while self.accept(set) {}
    }

    fn number(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if self.peek().is_some_and(is_alnum) {
            let c = self.peek().unwrap();
            self.pos += c.len_utf8();
            return Err(self.err(format!(
                "bad number syntax: {:?}",
                &self.src[start..self.pos]
            )));
        }
        let text = self.src[start..self.pos].to_string();
        self.emit(Tok::Number(text), start);
        Ok(())
    }

    /// From an opening quote past its closing `close`, skipping backslash escapes; a line end or
    /// the end of input first is `unterminated`.
    fn scan_escaped(&mut self, close: char, unterminated: &str) -> Result<(), ParseError> {
        self.pos += 1;
        loop {
            match self.peek() {
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        None | Some('\n') => return Err(self.err(unterminated)),
                        Some(c) => self.pos += c.len_utf8(),
                    }
                }
                None | Some('\n') => return Err(self.err(unterminated)),
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(c) => self.pos += c.len_utf8(),
            }
        }
    }

    fn quote(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        self.scan_escaped('"', "unterminated quoted string")?;
        let raw = &self.src[start..self.pos];
        let value = unquote(&raw[1..raw.len() - 1], '"').map_err(|m| ParseError {
            line: self.line_at(start),
            message: format!("{m}: {raw}"),
        })?;
        self.emit(Tok::Str(raw.to_string(), value), start);
        Ok(())
    }

    fn raw_quote(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        self.pos += 1;
        let Some(i) = self.rest().find('`') else {
            return Err(self.err("unterminated raw quoted string"));
        };
        self.pos += i + 1;
        let raw = &self.src[start..self.pos];
        // Carriage returns are discarded from raw strings, as in Go source.
        let value: Vec<u8> = raw[1..raw.len() - 1]
            .bytes()
            .filter(|b| *b != b'\r')
            .collect();
        self.emit(Tok::Str(raw.to_string(), value), start);
        Ok(())
    }

    fn char_const(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        self.scan_escaped('\'', "unterminated character constant")?;
        let raw = &self.src[start..self.pos];
        let bad = || ParseError {
            line: self.line_at(start),
            message: format!("malformed character constant: {raw}"),
        };
        let inner = &raw[1..raw.len() - 1];
        let v = if let Some(esc) = inner.strip_prefix('\\') {
            let bytes = unquote(&format!("\\{esc}"), '\'').map_err(|_| bad())?;
            let s = std::str::from_utf8(&bytes).ok();
            match s.map(|s| s.chars().collect::<Vec<_>>()) {
                Some(cs)
                    if cs.len() == 1
                        && !esc.starts_with('x')
                        && !esc.starts_with(|c: char| c.is_ascii_digit()) =>
                {
                    cs[0] as i64
                }
                _ if bytes.len() == 1 => bytes[0] as i64,
                _ => return Err(bad()),
            }
        } else {
            let cs: Vec<char> = inner.chars().collect();
            if cs.len() != 1 {
                return Err(bad());
            }
            cs[0] as i64
        };
        self.emit(Tok::Char(raw.to_string(), v), start);
        Ok(())
    }
}

/// `%#U` of a character, as Go prints it in lexer errors.
fn unicode_desc(c: char) -> String {
    format!("U+{:04X} '{}'", c as u32, c)
}

/// Go's strconv.Unquote body for `"` (and `'`) quoted text.
pub fn unquote(s: &str, quote: char) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.chars().peekable();
    let hex = |it: &mut std::iter::Peekable<std::str::Chars<'_>>,
               n: usize|
     -> Result<u32, &'static str> {
        let mut v = 0u32;
        for _ in 0..n {
            let c = it.next().ok_or("invalid syntax")?;
            v = v * 16 + c.to_digit(16).ok_or("invalid syntax")?;
        }
        Ok(v)
    };
    while let Some(c) = it.next() {
        if c != '\\' {
            if c == quote {
                return Err("invalid syntax");
            }
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let e = it.next().ok_or("invalid syntax")?;
        match e {
            'a' => out.push(7),
            'b' => out.push(8),
            'f' => out.push(12),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'v' => out.push(11),
            '\\' => out.push(b'\\'),
            '"' if quote == '"' => out.push(b'"'),
            '\'' if quote == '\'' => out.push(b'\''),
            'x' => out.push(hex(&mut it, 2)? as u8),
            'u' | 'U' => {
                let v = hex(&mut it, if e == 'u' { 4 } else { 8 })?;
                let ch = char::from_u32(v).ok_or("invalid syntax")?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap();
                for _ in 0..2 {
                    let d = it
                        .next()
                        .and_then(|c| c.to_digit(8))
                        .ok_or("invalid syntax")?;
                    v = v * 8 + d;
                }
                if v > 255 {
                    return Err("invalid syntax");
                }
                out.push(v as u8);
            }
            _ => return Err("invalid syntax"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        Lexer::lex(s, "{{", "}}")
            .unwrap()
            .into_iter()
            .map(|i| i.tok)
            .collect()
    }

    #[test]
    fn trim_markers_and_comments() {
        assert_eq!(
            toks("a  {{- .x -}}  b{{/* c */}}d"),
            vec![
                Tok::Text("a".into()),
                Tok::LeftDelim,
                Tok::Field("x".into()),
                Tok::RightDelim,
                Tok::Text("b".into()),
                Tok::Text("d".into()),
                Tok::Eof
            ]
        );
        // A dash without a space is a number, not a trim marker.
        assert_eq!(
            toks("{{-3}}"),
            vec![
                Tok::LeftDelim,
                Tok::Number("-3".into()),
                Tok::RightDelim,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn strings_chars_and_numbers() {
        assert_eq!(
            toks(r#"{{"a\n\x41" `r\n` 'x' '\n' 0x1F 1.5e3 $v := .a.b}}"#),
            vec![
                Tok::LeftDelim,
                Tok::Str(r#""a\n\x41""#.into(), b"a\nA".to_vec()),
                Tok::Space,
                Tok::Str("`r\\n`".into(), b"r\\n".to_vec()),
                Tok::Space,
                Tok::Char("'x'".into(), 120),
                Tok::Space,
                Tok::Char("'\\n'".into(), 10),
                Tok::Space,
                Tok::Number("0x1F".into()),
                Tok::Space,
                Tok::Number("1.5e3".into()),
                Tok::Space,
                Tok::Variable("$v".into()),
                Tok::Space,
                Tok::Declare,
                Tok::Space,
                Tok::Field("a".into()),
                Tok::Field("b".into()),
                Tok::RightDelim,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn errors() {
        let e = |s: &str| Lexer::lex(s, "{{", "}}").unwrap_err().message;
        assert_eq!(e("{{ .x "), "unclosed action");
        assert_eq!(e("{{/* x }}"), "unclosed comment");
        assert_eq!(e("{{ \"abc }}"), "unterminated quoted string");
        assert_eq!(e("{{ 3x }}"), "bad number syntax: \"3x\"");
        assert_eq!(e("{{ ) }}"), "unexpected right paren");
    }
}
