//! The parser: tokens to a tree, with Go's checks (undefined functions and variables,
//! `break` outside `range`, non-executable pipeline stages) and its error messages.

use std::collections::HashMap;
use std::fmt;

use crate::ParseError;
use crate::lex::{Item, Kw, Tok};

#[derive(Debug, Clone)]
pub enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    Range(Branch),
    With(Branch),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break(usize),
    Continue(usize),
}

/// `if`, `range` and `with`: a pipeline, a body and an optional else.
#[derive(Debug, Clone)]
pub struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
pub struct Pipe {
    pub pos: usize,
    /// Declared or assigned variables (`$x :=`, `$i, $e :=`).
    pub decl: Vec<String>,
    pub is_assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
pub struct Cmd {
    pub pos: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone)]
pub enum Arg {
    /// `.a.b`
    Field(usize, Vec<String>),
    /// `$x.a.b` (first element is `$x`)
    Variable(usize, Vec<String>),
    /// A function name.
    Ident(usize, String),
    Dot(usize),
    Nil(usize),
    Bool(usize, bool),
    Number(usize, Number),
    Str(usize, String, Vec<u8>),
    /// A parenthesized pipeline.
    Pipe(usize, Box<Pipe>),
    /// `(pipeline).a.b`
    Chain(usize, Box<Arg>, Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Number {
    pub text: String,
    pub int: Option<i64>,
    pub float: Option<f64>,
    /// Whether the text reads as a float (`1.0`, `1e3`) rather than an integer.
    pub is_float_text: bool,
}

impl Arg {
    pub fn pos(&self) -> usize {
        match self {
            Arg::Field(p, _)
            | Arg::Variable(p, _)
            | Arg::Ident(p, _)
            | Arg::Dot(p)
            | Arg::Nil(p)
            | Arg::Bool(p, _)
            | Arg::Number(p, _)
            | Arg::Str(p, _, _)
            | Arg::Pipe(p, _)
            | Arg::Chain(p, _, _) => *p,
        }
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Field(_, idents) => {
                for i in idents {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Arg::Variable(_, idents) => write!(f, "{}", idents.join(".")),
            Arg::Ident(_, n) => f.write_str(n),
            Arg::Dot(_) => f.write_str("."),
            Arg::Nil(_) => f.write_str("nil"),
            Arg::Bool(_, b) => write!(f, "{b}"),
            Arg::Number(_, n) => f.write_str(&n.text),
            Arg::Str(_, raw, _) => f.write_str(raw),
            Arg::Pipe(_, p) => write!(f, "({p})"),
            Arg::Chain(_, node, fields) => {
                match node.as_ref() {
                    Arg::Pipe(..) => write!(f, "{node}")?,
                    other => write!(f, "({other})")?,
                }
                for i in fields {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match a {
                Arg::Pipe(_, p) => write!(f, "({p})")?,
                a => write!(f, "{a}")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            write!(
                f,
                "{} {} ",
                self.decl.join(", "),
                if self.is_assign { "=" } else { ":=" }
            )?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// Parsed templates by name: the main one and every `define`/`block`.
pub type Set = HashMap<String, Vec<Node>>;

pub struct Parser<'a> {
    items: Vec<Item>,
    i: usize,
    /// Variables in scope (for "undefined variable").
    vars: Vec<String>,
    range_depth: usize,
    is_func: &'a dyn Fn(&str) -> bool,
    set: Set,
}

enum End {
    End,
    Else,
}

impl<'a> Parser<'a> {
    /// Parses `items` as template `name`, adding it and its definitions to `set`.
    pub fn parse(
        items: Vec<Item>,
        name: &'a str,
        is_func: &'a dyn Fn(&str) -> bool,
        set: &mut Set,
    ) -> Result<(), ParseError> {
        let mut p = Parser {
            items,
            i: 0,
            vars: vec!["$".into()],
            range_depth: 0,
            is_func,
            set: std::mem::take(set),
        };
        let mut root = Vec::new();
        loop {
            if let Some(Tok::Keyword(Kw::Define)) = p.peek_non_space_after_delim() {
                p.next(); // {{
                p.next_non_space(); // define
                p.define()?;
                continue;
            }
            if matches!(p.peek().tok, Tok::Eof) {
                break;
            }
            match p.text_or_action()? {
                Some(n) => root.push(n),
                None => {
                    let it = p.peek().clone();
                    return Err(p.unexpected(&it, "input"));
                }
            }
        }
        // An empty main template does not replace an existing definition (Go's rule).
        if !root.is_empty() || !p.set.contains_key(name) {
            p.set.insert(name.to_string(), root);
        }
        *set = p.set;
        Ok(())
    }

    fn peek(&self) -> &Item {
        &self.items[self.i.min(self.items.len() - 1)]
    }

    fn next(&mut self) -> Item {
        let it = self.peek().clone();
        if self.i < self.items.len() - 1 {
            self.i += 1;
        }
        it
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let it = self.next();
            if it.tok != Tok::Space {
                return it;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let save = self.i;
        let it = self.next_non_space();
        self.i = save;
        it
    }

    /// At `{{`, the first token inside it.
    fn peek_non_space_after_delim(&mut self) -> Option<Tok> {
        if self.peek().tok != Tok::LeftDelim {
            return None;
        }
        let save = self.i;
        self.next();
        let t = self.next_non_space().tok;
        self.i = save;
        Some(t)
    }

    fn err_at(&self, line: usize, msg: impl Into<String>) -> ParseError {
        ParseError {
            line,
            message: msg.into(),
        }
    }

    fn unexpected(&self, it: &Item, context: &str) -> ParseError {
        self.err_at(
            it.line,
            format!("unexpected {} in {context}", describe(&it.tok)),
        )
    }

    fn text_or_action(&mut self) -> Result<Option<Node>, ParseError> {
        let it = self.next_non_space();
        match it.tok {
            Tok::Text(t) => Ok(Some(Node::Text(t))),
            Tok::LeftDelim => self.action().map(Some),
            _ => {
                self.i -= 1;
                Ok(None)
            }
        }
    }

    /// A list of nodes up to `{{end}}` or `{{else}}`.
    fn item_list(&mut self, context: &str) -> Result<(Vec<Node>, End), ParseError> {
        let mut list = Vec::new();
        loop {
            let it = self.peek().clone();
            match it.tok {
                Tok::Eof => return Err(self.err_at(it.line, "unexpected EOF".to_string())),
                Tok::LeftDelim => {
                    match self.peek_non_space_after_delim() {
                        Some(Tok::Keyword(Kw::End)) => {
                            self.next();
                            self.next_non_space();
                            self.expect_right(context)?;
                            return Ok((list, End::End));
                        }
                        Some(Tok::Keyword(Kw::Else)) => {
                            self.next();
                            self.next_non_space();
                            return Ok((list, End::Else));
                        }
                        Some(Tok::Keyword(Kw::Define)) => {
                            return Err(self.err_at(it.line, "unexpected <define> in command"));
                        }
                        _ => {}
                    }
                    self.next();
                    list.push(self.action()?);
                }
                Tok::Text(t) => {
                    self.next();
                    list.push(Node::Text(t));
                }
                _ => return Err(self.unexpected(&it, context)),
            }
        }
    }

    fn expect_right(&mut self, context: &str) -> Result<(), ParseError> {
        let it = self.next_non_space();
        if it.tok != Tok::RightDelim {
            return Err(self.unexpected(&it, context));
        }
        Ok(())
    }

    /// After `{{`.
    fn action(&mut self) -> Result<Node, ParseError> {
        let it = self.peek_non_space();
        if let Tok::Keyword(k) = it.tok {
            self.next_non_space();
            return match k {
                Kw::Block => self.block(),
                Kw::Break => self.break_continue(it, true),
                Kw::Continue => self.break_continue(it, false),
                Kw::Else => Err(self.err_at(it.line, "unexpected {{else}}")),
                Kw::End => Err(self.err_at(it.line, "unexpected {{end}}")),
                Kw::If => self.branch("if").map(Node::If),
                Kw::Range => self.branch("range").map(Node::Range),
                Kw::Template => self.template_call(),
                Kw::With => self.branch("with").map(Node::With),
                Kw::Define => Err(self.err_at(it.line, "unexpected <define> in command")),
            };
        }
        let pipe = self.pipeline("command", true)?;
        Ok(Node::Action(pipe))
    }

    fn break_continue(&mut self, it: Item, is_break: bool) -> Result<Node, ParseError> {
        let word = if is_break { "break" } else { "continue" };
        let next = self.next_non_space();
        if next.tok != Tok::RightDelim {
            return Err(self.err_at(
                it.line,
                format!("unexpected {} in {{{{{word}}}}}", describe(&next.tok)),
            ));
        }
        if self.range_depth == 0 {
            return Err(self.err_at(it.line, format!("{{{{{word}}}}} outside {{{{range}}}}")));
        }
        Ok(if is_break {
            Node::Break(it.pos)
        } else {
            Node::Continue(it.pos)
        })
    }

    /// `if`/`range`/`with` after the keyword.
    fn branch(&mut self, context: &str) -> Result<Branch, ParseError> {
        let mark = self.vars.len();
        let pipe = self.pipeline(context, true)?;
        if pipe.decl.len() > 1 && context != "range" {
            return Err(self.err_at(
                self.peek().line,
                format!("too many declarations in {context}"),
            ));
        }
        if context == "range" {
            self.range_depth += 1;
        }
        let result = self.item_list(context);
        if context == "range" {
            self.range_depth -= 1;
        }
        let (list, end) = result?;
        let else_list = match end {
            End::End => None,
            End::Else => {
                // `{{else if …}}` / `{{else with …}}` chain into a nested branch.
                let next = self.peek_non_space();
                match (&next.tok, context) {
                    (Tok::Keyword(Kw::If), "if") | (Tok::Keyword(Kw::With), "with") => {
                        self.next_non_space();
                        let inner = self.branch(context)?;
                        // The nested branch consumed the shared {{end}}.
                        Some(vec![if context == "if" {
                            Node::If(inner)
                        } else {
                            Node::With(inner)
                        }])
                    }
                    _ => {
                        self.expect_right(context)?;
                        let (l, end2) = self.item_list(context)?;
                        if let End::Else = end2 {
                            return Err(self.err_at(
                                self.peek().line,
                                "expected end; found {{else}}".to_string(),
                            ));
                        }
                        Some(l)
                    }
                }
            }
        };
        self.vars.truncate(mark);
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    fn template_name(&mut self, context: &str) -> Result<String, ParseError> {
        let it = self.next_non_space();
        match it.tok {
            Tok::Str(_, v) => Ok(String::from_utf8_lossy(&v).into_owned()),
            t => Err(self.err_at(it.line, format!("unexpected {} in {context}", describe(&t)))),
        }
    }

    fn template_call(&mut self) -> Result<Node, ParseError> {
        let pos = self.peek_non_space().pos;
        let name = self.template_name("template clause")?;
        let next = self.peek_non_space();
        let pipe = if next.tok == Tok::RightDelim {
            self.next_non_space();
            None
        } else {
            Some(self.pipeline("template clause", true)?)
        };
        Ok(Node::Template { pos, name, pipe })
    }

    /// `{{define "name"}} … {{end}}`
    fn define(&mut self) -> Result<(), ParseError> {
        let name = self.template_name("define clause")?;
        self.expect_right("define clause")?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let saved_depth = std::mem::replace(&mut self.range_depth, 0);
        let (list, end) = self.item_list("define")?;
        self.vars = saved;
        self.range_depth = saved_depth;
        if let End::Else = end {
            return Err(self.err_at(self.peek().line, "unexpected {{else}}"));
        }
        self.add_definition(name, list);
        Ok(())
    }

    fn add_definition(&mut self, name: String, list: Vec<Node>) {
        // Go keeps an existing non-empty definition when the new one is empty.
        let empty = list
            .iter()
            .all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()));
        if empty && self.set.contains_key(&name) {
            return;
        }
        self.set.insert(name, list);
    }

    /// `{{block "name" pipeline}} … {{end}}`: define it and call it.
    fn block(&mut self) -> Result<Node, ParseError> {
        let pos = self.peek_non_space().pos;
        let name = self.template_name("block clause")?;
        let pipe = self.pipeline("block clause", true)?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let saved_depth = std::mem::replace(&mut self.range_depth, 0);
        let (list, end) = self.item_list("block")?;
        self.vars = saved;
        self.range_depth = saved_depth;
        if let End::Else = end {
            return Err(self.err_at(self.peek().line, "unexpected {{else}}"));
        }
        self.add_definition(name.clone(), list);
        Ok(Node::Template {
            pos,
            name,
            pipe: Some(pipe),
        })
    }

    /// A pipeline up to `}}` (or `)` when `to_delim` is false).
    fn pipeline(&mut self, context: &str, to_delim: bool) -> Result<Pipe, ParseError> {
        let start = self.peek_non_space();
        let mut pipe = Pipe {
            pos: start.pos,
            decl: Vec::new(),
            is_assign: false,
            cmds: Vec::new(),
        };
        // Declarations: `$x :=`, `$x =`, `$i, $e :=` (range).
        let save = self.i;
        let v = self.next_non_space();
        if let Tok::Variable(name) = &v.tok {
            let after = self.next_non_space();
            match after.tok {
                Tok::Declare | Tok::Assign => {
                    pipe.is_assign = after.tok == Tok::Assign;
                    pipe.decl.push(name.clone());
                }
                Tok::Comma if context == "range" => {
                    let v2 = self.next_non_space();
                    let Tok::Variable(name2) = v2.tok else {
                        return Err(
                            self.err_at(v2.line, "range can only initialize variables".to_string())
                        );
                    };
                    let op = self.next_non_space();
                    if !matches!(op.tok, Tok::Declare | Tok::Assign) {
                        return Err(self.unexpected(&op, context));
                    }
                    pipe.is_assign = op.tok == Tok::Assign;
                    pipe.decl.push(name.clone());
                    pipe.decl.push(name2);
                }
                Tok::Comma => {
                    return Err(
                        self.err_at(after.line, format!("too many declarations in {context}"))
                    );
                }
                _ => self.i = save,
            }
        } else {
            self.i = save;
        }
        if pipe.is_assign {
            for d in &pipe.decl {
                if !self.vars.contains(d) {
                    return Err(self.err_at(v.line, format!("undefined variable {d:?}")));
                }
            }
        }
        loop {
            let it = self.next_non_space();
            match it.tok {
                Tok::RightDelim if to_delim => break,
                Tok::RightParen if !to_delim => break,
                Tok::Bool(_)
                | Tok::Char(..)
                | Tok::Dot
                | Tok::Field(_)
                | Tok::Ident(_)
                | Tok::Number(_)
                | Tok::Nil
                | Tok::Str(..)
                | Tok::Variable(_)
                | Tok::LeftParen => {
                    self.i -= 1;
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return Err(self.unexpected(&it, context)),
            }
        }
        if !pipe.is_assign {
            // Declared after the pipeline, visible from here on.
            for d in &pipe.decl {
                self.vars.push(d.clone());
            }
        }
        if pipe.cmds.is_empty() {
            return Err(self.err_at(start.line, format!("missing value for {context}")));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args[0],
                Arg::Bool(..) | Arg::Dot(_) | Arg::Nil(_) | Arg::Number(..) | Arg::Str(..)
            ) {
                return Err(self.err_at(
                    start.line,
                    format!("non executable command in pipeline stage {}", i + 1),
                ));
            }
        }
        Ok(pipe)
    }

    /// Operands up to `|`, `}}` or `)`.
    fn command(&mut self) -> Result<Cmd, ParseError> {
        let pos = self.peek_non_space().pos;
        let mut cmd = Cmd {
            pos,
            args: Vec::new(),
        };
        loop {
            while self.peek().tok == Tok::Space {
                self.next();
            }
            if let Some(a) = self.operand()? {
                cmd.args.push(a);
            }
            let it = self.next();
            match it.tok {
                Tok::Space => continue,
                Tok::RightDelim | Tok::RightParen => self.i -= 1,
                Tok::Pipe => {}
                _ => return Err(self.unexpected(&it, "operand")),
            }
            break;
        }
        if cmd.args.is_empty() {
            return Err(self.err_at(self.peek().line, "empty command"));
        }
        Ok(cmd)
    }

    /// One operand, with a trailing field chain.
    fn operand(&mut self) -> Result<Option<Arg>, ParseError> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if let Tok::Field(_) = self.peek().tok {
            // Go positions a chain at its first chained field.
            let chain_pos = self.peek().pos;
            let mut fields = Vec::new();
            while let Tok::Field(f) = self.peek().tok.clone() {
                self.next();
                fields.push(f);
            }
            return Ok(Some(match node {
                Arg::Field(_, mut idents) => {
                    idents.extend(fields);
                    Arg::Field(chain_pos, idents)
                }
                Arg::Variable(_, mut idents) => {
                    idents.extend(fields);
                    Arg::Variable(chain_pos, idents)
                }
                Arg::Bool(..) | Arg::Str(..) | Arg::Number(..) | Arg::Nil(_) | Arg::Dot(_) => {
                    return Err(self.err_at(
                        self.peek().line,
                        format!("unexpected . after term {:?}", node.to_string()),
                    ));
                }
                other => Arg::Chain(chain_pos, Box::new(other), fields),
            }));
        }
        Ok(Some(node))
    }

    fn term(&mut self) -> Result<Option<Arg>, ParseError> {
        let it = self.peek().clone();
        let arg = match it.tok {
            Tok::Ident(name) => {
                if !(self.is_func)(&name) {
                    return Err(self.err_at(it.line, format!("function {name:?} not defined")));
                }
                Arg::Ident(it.pos, name)
            }
            Tok::Dot => Arg::Dot(it.pos),
            Tok::Nil => Arg::Nil(it.pos),
            Tok::Variable(name) => {
                if !self.vars.contains(&name) {
                    return Err(self.err_at(it.line, format!("undefined variable {name:?}")));
                }
                Arg::Variable(it.pos, vec![name])
            }
            Tok::Field(f) => Arg::Field(it.pos, vec![f]),
            Tok::Bool(b) => Arg::Bool(it.pos, b),
            Tok::Char(raw, v) => Arg::Number(
                it.pos,
                Number {
                    text: raw,
                    int: Some(v),
                    float: Some(v as f64),
                    is_float_text: false,
                },
            ),
            Tok::Number(text) => Arg::Number(
                it.pos,
                parse_number(&text).ok_or_else(|| {
                    self.err_at(it.line, format!("illegal number syntax: {text:?}"))
                })?,
            ),
            Tok::Str(raw, v) => Arg::Str(it.pos, raw, v),
            Tok::LeftParen => {
                self.next();
                let pipe = self.pipeline("parenthesized pipeline", false)?;
                return Ok(Some(Arg::Pipe(it.pos, Box::new(pipe))));
            }
            _ => return Ok(None),
        };
        self.next();
        Ok(Some(arg))
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Text(s) => format!("{s:?}"),
        Tok::LeftDelim => "\"{{\"".into(),
        Tok::RightDelim => "\"}}\"".into(),
        Tok::Space => "space".into(),
        Tok::Ident(s) | Tok::Number(s) => format!("<{s}>"),
        Tok::Field(s) => format!("<.{s}>"),
        Tok::Variable(s) => format!("<{s}>"),
        Tok::Dot => "<.>".into(),
        Tok::Str(raw, _) | Tok::Char(raw, _) => format!("{raw:?}"),
        Tok::Bool(b) => format!("<{b}>"),
        Tok::Nil => "<nil>".into(),
        Tok::Pipe => "\"|\"".into(),
        Tok::LeftParen => "\"(\"".into(),
        Tok::RightParen => "\")\"".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::Keyword(k) => format!("<{}>", format!("{k:?}").to_lowercase()),
        Tok::Eof => "EOF".into(),
    }
}

/// A number constant as Go's parser reads it: integer when the text is an integer (or a
/// float with an integral value), float when it has a point or exponent.
fn parse_number(text: &str) -> Option<Number> {
    if text.ends_with('i') {
        return None; // complex constants: not representable here
    }
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b.to_string()),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean).to_string()),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        if h.contains(['.', 'p']) {
            None
        } else {
            i64::from_str_radix(h, 16).ok()
        }
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|b| b.is_ascii_digit())
    {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else {
        lower.parse::<i64>().ok()
    }
    .map(|i| if neg { -i } else { i });
    let is_hex = lower.starts_with("0x");
    let float = if is_hex {
        int.map(|i| i as f64)
    } else {
        clean.parse::<f64>().ok().or(int.map(|i| i as f64))
    };
    let is_float_text = !is_hex && lower.contains(['.', 'e']);
    let int = int
        .or_else(|| float.and_then(|f| (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)));
    if int.is_none() && float.is_none() {
        return None;
    }
    Some(Number {
        text: text.to_string(),
        int,
        float,
        is_float_text,
    })
}
