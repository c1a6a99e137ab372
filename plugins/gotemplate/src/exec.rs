//! The evaluator: walks a parsed template over data with text/template's semantics
//! (`missingkey=error`, as ESO sets it) and its error messages.

use crate::funcs::{self, FnError};
use crate::limits::{MAX_DEPTH, MAX_OUTPUT, MAX_STEPS};
use crate::parse::{Arg, Branch, Cmd, Node, Pipe, Set};
use crate::value::Value;

/// Why a walk stopped early.
pub enum Ctl {
    Break,
    Continue,
    Fail(String),
}

type R<T> = Result<T, Ctl>;

pub struct State<'a> {
    set: &'a Set,
    /// The name the text was parsed under (positions refer to its text).
    parse_name: &'a str,
    src: &'a str,
    /// The template being executed (a `define` name inside `{{template}}`).
    exec_name: String,
    vars: Vec<(String, Value)>,
    pub out: Vec<u8>,
    depth: usize,
    steps: u64,
    /// The step budget ([`MAX_STEPS`]).
    pub max_steps: u64,
    /// `missingkey=error` (ESO's templates); off for `rewrite.transform`, as ESO runs it.
    pub missing_key_error: bool,
}

impl<'a> State<'a> {
    pub fn new(set: &'a Set, parse_name: &'a str, src: &'a str) -> Self {
        State {
            set,
            parse_name,
            src,
            exec_name: parse_name.to_string(),
            vars: Vec::new(),
            out: Vec::new(),
            depth: 0,
            steps: 0,
            max_steps: MAX_STEPS,
            missing_key_error: true,
        }
    }

    /// Executes template `name` with `dot` as data.
    pub fn execute(&mut self, name: &str, dot: Value) -> Result<(), String> {
        let Some(list) = self.set.get(name) else {
            return Err(format!(
                "template: {name}: \"{name}\" is an incomplete or empty template"
            ));
        };
        self.vars = vec![("$".into(), dot.clone())];
        match self.walk_list(&dot, list) {
            Ok(()) => Ok(()),
            Err(Ctl::Fail(m)) => Err(m),
            Err(_) => Ok(()),
        }
    }

    /// `template: NAME:LINE:COL: executing "NAME" at <CONTEXT>: MESSAGE`, as Go reports.
    fn fail(&self, pos: usize, context: &str, msg: impl std::fmt::Display) -> Ctl {
        let before = &self.src[..pos.min(self.src.len())];
        let line = 1 + before.matches('\n').count();
        let col = match before.rfind('\n') {
            Some(i) => pos - (i + 1),
            None => pos,
        };
        Ctl::Fail(format!(
            "template: {}:{}:{}: executing {:?} at <{}>: {}",
            self.parse_name, line, col, self.exec_name, context, msg
        ))
    }

    fn fn_fail(&self, pos: usize, context: &str, name: &str, e: FnError) -> Ctl {
        match e {
            FnError::Call(m) => self.fail(pos, context, format!("error calling {name}: {m}")),
            FnError::Plain(m) => self.fail(pos, context, m),
            FnError::Type { expected, got } => self.fail(
                pos,
                context,
                format!("wrong type for value; expected {expected}; got {got}"),
            ),
        }
    }

    fn walk_list(&mut self, dot: &Value, list: &[Node]) -> R<()> {
        for n in list {
            self.walk(dot, n)?;
        }
        Ok(())
    }

    fn step(&mut self, pos: usize) -> R<()> {
        self.steps += 1;
        if self.steps > self.max_steps {
            return Err(self.fail(
                pos,
                "template",
                format!("template exceeds {} evaluation steps", self.max_steps),
            ));
        }
        Ok(())
    }

    fn walk(&mut self, dot: &Value, node: &Node) -> R<()> {
        self.step(0)?;
        match node {
            Node::Text(t) => self.write(t.as_bytes(), 0),
            Node::Action(pipe) => {
                let v = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    match &v {
                        Value::Nil => self.write(b"<no value>", pipe.pos)?,
                        v => {
                            let mut buf = Vec::new();
                            v.write_v(&mut buf);
                            self.write(&buf, pipe.pos)?;
                        }
                    }
                }
                Ok(())
            }
            Node::If(b) => self.walk_if_with(dot, b, false),
            Node::With(b) => self.walk_if_with(dot, b, true),
            Node::Range(b) => self.walk_range(dot, b),
            Node::Template { pos, name, pipe } => self.walk_template(dot, *pos, name, pipe),
            Node::Break(_) => Err(Ctl::Break),
            Node::Continue(_) => Err(Ctl::Continue),
        }
    }

    fn write(&mut self, b: &[u8], pos: usize) -> R<()> {
        if self.out.len() + b.len() > MAX_OUTPUT {
            return Err(self.fail(
                pos,
                "output",
                format!("template output exceeds {} MiB", MAX_OUTPUT >> 20),
            ));
        }
        self.out.extend_from_slice(b);
        Ok(())
    }

    fn walk_if_with(&mut self, dot: &Value, b: &Branch, with: bool) -> R<()> {
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let r = if val.truthy() {
            if with {
                self.walk_list(&val, &b.list)
            } else {
                self.walk_list(dot, &b.list)
            }
        } else if let Some(e) = &b.else_list {
            self.walk_list(dot, e)
        } else {
            Ok(())
        };
        self.vars.truncate(mark);
        r
    }

    fn walk_range(&mut self, dot: &Value, b: &Branch) -> R<()> {
        let outer = self.vars.len();
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let mark = self.vars.len();
        let items: Vec<(Value, Value)> = match &val {
            Value::List(l) => l
                .iter()
                .enumerate()
                .map(|(i, e)| (Value::Int(i as i64), e.clone()))
                .collect(),
            Value::Map(m) => m
                .borrow()
                .entries
                .iter()
                .map(|(k, v)| (Value::str(k), v.clone()))
                .collect(),
            Value::Int(n) => {
                if b.pipe.decl.len() > 1 {
                    self.vars.truncate(outer);
                    return Err(self.fail(
                        b.pipe.pos,
                        &format!("range {}", b.pipe),
                        format!("can't use {n} to iterate over more than one variable"),
                    ));
                }
                (0..(*n).max(0))
                    .map(|i| (Value::Int(i), Value::Int(i)))
                    .collect()
            }
            Value::Nil => Vec::new(),
            other => {
                self.vars.truncate(outer);
                let shown = String::from_utf8_lossy(&other.to_go_string()).into_owned();
                return Err(self.fail(
                    b.pipe.pos,
                    &format!("{}", b.pipe),
                    format!("range can't iterate over {}", redact(other, &shown)),
                ));
            }
        };
        let empty = items.is_empty();
        for (index, elem) in items {
            self.step(b.pipe.pos)?;
            let n = b.pipe.decl.len();
            if n > 0 {
                if b.pipe.is_assign {
                    if n > 1 {
                        self.set_var(&b.pipe.decl[0], index.clone());
                        self.set_var(&b.pipe.decl[1], elem.clone());
                    } else {
                        self.set_var(&b.pipe.decl[0], elem.clone());
                    }
                } else {
                    let top = self.vars.len();
                    self.vars[top - 1].1 = elem.clone();
                    if n > 1 {
                        self.vars[top - 2].1 = index.clone();
                    }
                }
            }
            let r = self.walk_list(&elem, &b.list);
            self.vars.truncate(mark);
            match r {
                Ok(()) | Err(Ctl::Continue) => {}
                Err(Ctl::Break) => break,
                Err(e) => {
                    self.vars.truncate(outer);
                    return Err(e);
                }
            }
        }
        let r = if empty {
            match &b.else_list {
                Some(e) => self.walk_list(dot, e),
                None => Ok(()),
            }
        } else {
            Ok(())
        };
        self.vars.truncate(outer);
        r
    }

    fn walk_template(&mut self, dot: &Value, pos: usize, name: &str, pipe: &Option<Pipe>) -> R<()> {
        let context = match pipe {
            Some(p) => format!("{{{{template {name:?} {p}}}}}"),
            None => format!("{{{{template {name:?}}}}}"),
        };
        let Some(list) = self.set.get(name) else {
            return Err(self.fail(pos, &context, format!("template {name:?} not defined")));
        };
        if self.depth >= MAX_DEPTH {
            return Err(self.fail(
                pos,
                &context,
                format!("exceeded maximum template depth ({MAX_DEPTH})"),
            ));
        }
        let new_dot = match pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Value::Nil,
        };
        let saved_vars = std::mem::replace(&mut self.vars, vec![("$".into(), new_dot.clone())]);
        let saved_name = std::mem::replace(&mut self.exec_name, name.to_string());
        self.depth += 1;
        let r = self.walk_list(&new_dot, list);
        self.depth -= 1;
        self.exec_name = saved_name;
        self.vars = saved_vars;
        match r {
            Err(Ctl::Fail(m)) => Err(Ctl::Fail(m)),
            _ => Ok(()),
        }
    }

    fn set_var(&mut self, name: &str, v: Value) {
        if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            slot.1 = v;
        }
    }

    fn var_value(&self, name: &str, pos: usize) -> R<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => Err(self.fail(pos, name, format!("undefined variable: {name}"))),
        }
    }

    pub fn eval_pipeline(&mut self, dot: &Value, pipe: &Pipe) -> R<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Value::Nil);
        for d in &pipe.decl {
            if pipe.is_assign {
                self.set_var(d, value.clone());
            } else {
                self.vars.push((d.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], fin: &Option<Value>) -> R<()> {
        if args.len() > 1 || fin.is_some() {
            return Err(self.fail(
                args[0].pos(),
                &args[0].to_string(),
                format!("can't give argument to non-function {}", args[0]),
            ));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Value, cmd: &Cmd, fin: Option<Value>) -> R<Value> {
        let first = &cmd.args[0];
        match first {
            Arg::Field(pos, idents) => {
                self.eval_field_chain(dot.clone(), first, *pos, idents, &cmd.args, fin, true)
            }
            Arg::Chain(pos, node, fields) => {
                if let Arg::Nil(_) = node.as_ref() {
                    return Err(self.fail(
                        *pos,
                        &first.to_string(),
                        format!("indirection through explicit nil in {first}"),
                    ));
                }
                let recv = self.eval_arg(dot, node)?;
                self.eval_field_chain(recv, first, *pos, fields, &cmd.args, fin, false)
            }
            Arg::Ident(_, name) => {
                let context = cmd.to_string();
                self.eval_function(dot, cmd.pos, &context, name, &cmd.args, fin)
            }
            Arg::Pipe(_, p) => {
                self.not_a_function(&cmd.args, &fin)?;
                let mark = self.vars.len();
                let v = self.eval_pipeline(dot, p);
                self.vars.truncate(mark);
                v
            }
            Arg::Variable(pos, idents) => {
                let v = self.var_value(&idents[0], *pos)?;
                if idents.len() == 1 {
                    self.not_a_function(&cmd.args, &fin)?;
                    return Ok(v);
                }
                self.eval_field_chain(v, first, *pos, &idents[1..], &cmd.args, fin, false)
            }
            Arg::Nil(pos) => {
                self.not_a_function(&cmd.args, &fin)?;
                Err(self.fail(*pos, "nil", "nil is not a command"))
            }
            lit => {
                self.not_a_function(&cmd.args, &fin)?;
                self.eval_arg(dot, lit)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_field_chain(
        &mut self,
        mut recv: Value,
        node: &Arg,
        pos: usize,
        idents: &[String],
        args: &[Arg],
        fin: Option<Value>,
        from_dot: bool,
    ) -> R<Value> {
        let n = idents.len();
        for (i, ident) in idents.iter().enumerate() {
            let last = i == n - 1;
            let has_args = last && (args.len() > 1 || fin.is_some());
            recv = self.eval_field(recv, ident, node, pos, has_args, i > 0 || from_dot)?;
        }
        Ok(recv)
    }

    fn eval_field(
        &self,
        recv: Value,
        name: &str,
        node: &Arg,
        pos: usize,
        has_args: bool,
        nested: bool,
    ) -> R<Value> {
        let ctx = node.to_string();
        match &recv {
            Value::Nil if nested => Err(self.fail(
                pos,
                &ctx,
                format!("nil pointer evaluating interface {{}}.{name}"),
            )),
            Value::Nil => Err(self.fail(pos, &ctx, format!("nil data; no entry for key {name:?}"))),
            Value::Map(m) => {
                if has_args {
                    return Err(self.fail(
                        pos,
                        &ctx,
                        format!("{name} is not a method but has arguments"),
                    ));
                }
                match m.borrow().entries.get(name).cloned() {
                    Some(v) => Ok(v),
                    None if !self.missing_key_error => Ok(Value::Nil),
                    None => Err(self.fail(pos, &ctx, format!("map has no entry for key {name:?}"))),
                }
            }
            other => Err(self.fail(
                pos,
                &ctx,
                format!("can't evaluate field {name} in type {}", other.type_name()),
            )),
        }
    }

    /// Calls `name`; `pos` and `context` are the command's (Go reports errors there).
    fn eval_function(
        &mut self,
        dot: &Value,
        pos: usize,
        context: &str,
        name: &str,
        args: &[Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        self.step(pos)?;
        let Some(spec) = funcs::lookup(name) else {
            return Err(self.fail(pos, context, format!("{name:?} is not a defined function")));
        };
        let call_args = &args[1..];
        let n = call_args.len() + usize::from(fin.is_some());
        if n < spec.min || spec.max.is_some_and(|m| n > m) {
            let msg = match spec.max {
                Some(m) if m == spec.min => {
                    format!("wrong number of args for {name}: want {m} got {n}")
                }
                _ => format!(
                    "wrong number of args for {name}: want at least {} got {n}",
                    spec.min
                ),
            };
            return Err(self.fail(pos, context, msg));
        }
        // `and` and `or` stop at the first argument that decides.
        if name == "and" || name == "or" {
            let want = name == "or";
            let mut v = Value::Nil;
            for a in call_args {
                v = self.eval_arg(dot, a)?;
                if v.truthy() == want {
                    return Ok(v);
                }
            }
            if let Some(f) = fin {
                v = f;
            }
            return Ok(v);
        }
        let mut vals = Vec::with_capacity(n);
        for a in call_args {
            vals.push(self.eval_arg(dot, a)?);
        }
        if let Some(f) = fin {
            vals.push(f);
        }
        match spec.imp {
            funcs::Imp::F(f) => {
                f(vals.clone()).map_err(|e| match scrub(name, call_args, &vals, e) {
                    // Go reports a mistyped argument at the argument.
                    e @ FnError::Type { got, .. } => {
                        match call_args
                            .iter()
                            .zip(&vals)
                            .find(|(_, v)| v.type_name() == got)
                        {
                            Some((a, _)) => self.fn_fail(a.pos(), &a.to_string(), name, e),
                            None => self.fn_fail(pos, context, name, e),
                        }
                    }
                    e => self.fn_fail(pos, context, name, e),
                })
            }
            funcs::Imp::Unsupported(why) => Err(self.fail(
                pos,
                context,
                format!("error calling {name}: {name} is not supported by esox: {why}"),
            )),
        }
    }

    fn eval_arg(&mut self, dot: &Value, a: &Arg) -> R<Value> {
        match a {
            Arg::Dot(_) => Ok(dot.clone()),
            Arg::Nil(_) => Ok(Value::Nil),
            Arg::Bool(_, b) => Ok(Value::Bool(*b)),
            Arg::Str(_, _, v) => Ok(Value::str(v)),
            Arg::Number(pos, n) => {
                if !n.is_float_text
                    && let Some(i) = n.int
                {
                    return Ok(Value::Int(i));
                }
                match n.float {
                    Some(f) => Ok(Value::Float(f)),
                    None => Err(self.fail(*pos, &n.text, format!("{} overflows int", n.text))),
                }
            }
            Arg::Field(pos, idents) => {
                self.eval_field_chain(dot.clone(), a, *pos, idents, &[], None, true)
            }
            Arg::Variable(pos, idents) => {
                let v = self.var_value(&idents[0], *pos)?;
                if idents.len() == 1 {
                    return Ok(v);
                }
                self.eval_field_chain(v, a, *pos, &idents[1..], &[], None, false)
            }
            Arg::Pipe(_, p) => {
                let mark = self.vars.len();
                let v = self.eval_pipeline(dot, p);
                self.vars.truncate(mark);
                v
            }
            Arg::Ident(pos, name) => {
                self.eval_function(dot, *pos, name, name, std::slice::from_ref(a), None)
            }
            Arg::Chain(..) => {
                let cmd = Cmd {
                    pos: a.pos(),
                    args: vec![a.clone()],
                };
                self.eval_command(dot, &cmd, None)
            }
        }
    }
}

/// What `fail` reports when its message is not a string literal of the template.
pub const FAIL_NOT_SHOWN: &str = "the message is not shown: it is computed from data (only a string literal of the template is shown)";

/// What replaces an argument's text that a function's error repeated.
pub const REDACTED: &str = "<redacted>";

/// Argument texts shorter than this are not searched for in messages (they would match
/// too much); functions' messages do not quote arguments in the first place.
const MIN_REDACTED_LEN: usize = 4;

/// A function's error, made safe to show: the data it was called with (secret values) never
/// appears in it.
///
/// - `fail` (sprig) errors with its argument, the template author's message: it is shown
///   only when it is a string literal of the template (`{{ fail "no password" }}`); a
///   message computed from data (`{{ fail .x }}`, `{{ .x | fail }}`, `printf`) is replaced by
///   [`FAIL_NOT_SHOWN`].
/// - Every other function builds its messages without its arguments' values (it names the
///   problem: `improper constraint`, `parsing time as "2006-01-02": …`). As a net under
///   that, the text of every argument that is not a literal of the template (fields,
///   variables, pipelines, the piped value) is replaced by [`REDACTED`] wherever the message
///   still contains it, raw or `{:?}`-quoted.
fn scrub(name: &str, args: &[Arg], vals: &[Value], e: FnError) -> FnError {
    let (message, wrap): (String, fn(String) -> FnError) = match e {
        FnError::Call(m) => (m, FnError::Call),
        FnError::Plain(m) => (m, FnError::Plain),
        other => return other,
    };
    if name == "fail" {
        return match (args, vals.len()) {
            ([Arg::Str(..)], 1) => wrap(message),
            _ => wrap(FAIL_NOT_SHOWN.into()),
        };
    }
    let mut out = message;
    for (i, v) in vals.iter().enumerate() {
        // `vals` are the arguments in order, then the piped value (no node: data).
        if matches!(
            args.get(i),
            Some(Arg::Str(..) | Arg::Number(..) | Arg::Bool(..) | Arg::Nil(..))
        ) {
            continue;
        }
        for_each_text(v, 0, &mut |t| out = redact_text(&out, t));
    }
    wrap(out)
}

/// Every string in `v` (and in the lists and maps it holds, a few levels deep).
fn for_each_text(v: &Value, depth: usize, f: &mut dyn FnMut(&str)) {
    match v {
        Value::Str(s) => f(&crate::value::text(s)),
        Value::List(l) if depth < 4 => {
            for e in l.iter() {
                for_each_text(e, depth + 1, f);
            }
        }
        Value::Map(m) if depth < 4 => {
            for e in m.borrow().entries.values() {
                for_each_text(e, depth + 1, f);
            }
        }
        _ => {}
    }
}

/// `message` without `t`, raw, trimmed or quoted.
fn redact_text(message: &str, t: &str) -> String {
    let mut out = message.to_string();
    for form in [t, t.trim()] {
        if form.len() < MIN_REDACTED_LEN {
            continue;
        }
        let quoted = format!("{form:?}");
        for needle in [&quoted[1..quoted.len() - 1], form] {
            if out.contains(needle) {
                out = out.replace(needle, REDACTED);
            }
        }
    }
    out
}

/// What an error may show of a value: its type only, never a string's content (secrets).
fn redact(v: &Value, shown: &str) -> String {
    match v {
        Value::Str(_) => "a string value".to_string(),
        Value::Bool(_) | Value::Int(_) | Value::Float(_) => shown.to_string(),
        other => format!("a value of type {}", other.type_name()),
    }
}
