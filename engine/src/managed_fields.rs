//! Drops `metadata.managedFields` from the apiserver's answers about esox's own kinds, before
//! kube-rs decodes them.
//!
//! Why: serde_json refuses documents nested deeper than 128 levels, and the apiserver keeps
//! free-form fields (`x-kubernetes-preserve-unknown-fields`) nested up to 10 000 levels. The
//! spec's free-form fields are read with a depth limit ([`crate::api::free_form`]), but the
//! apiserver mirrors every field a client set in `metadata.managedFields` (`fieldsV1`), as deep
//! as the field itself. One ExternalSecret with a 200-level `rewrite.merge` then made every
//! LIST and watch event of ExternalSecrets undecodable: the controller stopped seeing the
//! kind for every tenant. esox never reads the managed fields of its own kinds (it reads a
//! Secret's, which live under `/api/v1` and are left alone), so they are dropped on the wire,
//! as controller-runtime's `TransformStripManagedFields` drops them after decoding. It also
//! keeps them out of the reflector caches: a few hundred bytes per object.
//!
//! [`Stripper`] is a streaming, non-recursive scanner over the raw JSON bytes: a LIST, one
//! object, or a watch stream of newline-separated events split across chunks anywhere. It
//! removes the member `"managedFields"` of every object that is the value of a `"metadata"`
//! member, with its separating comma, and passes every other byte through unchanged.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body::{Body, Frame};
use tower::{Layer, Service};

const METADATA: &[u8] = b"metadata";
const MANAGED_FIELDS: &[u8] = b"managedFields";

/// One open object or array.
#[derive(Debug, Clone, Copy)]
struct Open {
    /// An object (else an array).
    object: bool,
    /// An object that is the value of a `"metadata"` member: its members are held back until
    /// their key is known.
    metadata: bool,
    /// In an object: the next string is a key.
    expect_key: bool,
    /// In a metadata object: a member was written (a later one needs its comma).
    wrote_member: bool,
    /// In a metadata object: a comma was read and not yet written.
    comma_pending: bool,
}

/// Where a key being read is going.
#[derive(Debug)]
enum Key {
    /// Not in a key.
    None,
    /// A key of an ordinary object: written as read, its first bytes kept to spot `metadata`.
    Plain,
    /// A key of a metadata object: held back (with its opening quote) until it ends.
    Held,
}

/// The streaming scanner; feed it chunks in order with [`Stripper::push`].
#[derive(Debug)]
pub struct Stripper {
    stack: Vec<Open>,
    in_string: bool,
    escape: bool,
    key: Key,
    /// The key read so far (at most `MANAGED_FIELDS.len() + 1` bytes are kept: enough to tell).
    key_bytes: Vec<u8>,
    /// The last key ended was `metadata`: an object opening next is a metadata object.
    after_metadata_key: bool,
    /// Skipping the `managedFields` member: `Some(depth)` of brackets opened inside it.
    skip: Option<Skip>,
}

#[derive(Debug, Clone, Copy)]
struct Skip {
    /// The value has started (the colon was passed).
    value_started: bool,
    /// Brackets open inside the value.
    depth: usize,
    in_string: bool,
    escape: bool,
    /// A bare literal (number, true, false, null) is being skipped.
    literal: bool,
}

impl Default for Stripper {
    fn default() -> Self {
        Self::new()
    }
}

impl Stripper {
    /// A scanner at the start of a document (or a stream of documents).
    pub fn new() -> Self {
        Stripper {
            stack: Vec::new(),
            in_string: false,
            escape: false,
            key: Key::None,
            key_bytes: Vec::with_capacity(MANAGED_FIELDS.len() + 1),
            after_metadata_key: false,
            skip: None,
        }
    }

    /// Scans the next chunk and appends what passes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.reserve(chunk.len());
        let mut i = 0;
        while i < chunk.len() {
            if self.skip.is_some() {
                i += self.skip_bytes(&chunk[i..]);
                continue;
            }
            let b = chunk[i];
            i += 1;
            if self.in_string {
                self.string_byte(b, out);
                continue;
            }
            self.structural_byte(b, out);
        }
    }

    /// One byte inside a string (keys included).
    fn string_byte(&mut self, b: u8, out: &mut Vec<u8>) {
        let end = !self.escape && b == b'"';
        self.escape = !self.escape && b == b'\\';
        match self.key {
            Key::None => out.push(b),
            Key::Plain | Key::Held => {
                if end {
                    return self.key_ended(out);
                }
                if matches!(self.key, Key::Held) {
                    // Held bytes go to `out` later; keep them all.
                    self.key_bytes.push(b);
                } else {
                    out.push(b);
                    if self.key_bytes.len() <= MANAGED_FIELDS.len() {
                        self.key_bytes.push(b);
                    }
                }
                return;
            }
        }
        if end {
            self.in_string = false;
        }
    }

    /// The closing quote of a key was read (not yet written).
    fn key_ended(&mut self, out: &mut Vec<u8>) {
        self.in_string = false;
        let held = matches!(self.key, Key::Held);
        self.key = Key::None;
        if let Some(top) = self.stack.last_mut() {
            top.expect_key = false;
        }
        if held && self.key_bytes == MANAGED_FIELDS {
            // Drop the member: its comma (if any was read), the key, and next its value.
            if let Some(top) = self.stack.last_mut() {
                top.comma_pending = false;
            }
            self.skip = Some(Skip {
                value_started: false,
                depth: 0,
                in_string: false,
                escape: false,
                literal: false,
            });
            self.key_bytes.clear();
            return;
        }
        if held {
            if let Some(top) = self.stack.last_mut() {
                if top.comma_pending && top.wrote_member {
                    out.push(b',');
                }
                top.comma_pending = false;
                top.wrote_member = true;
            }
            out.push(b'"');
            out.extend_from_slice(&self.key_bytes);
        }
        out.push(b'"');
        self.after_metadata_key = self.key_bytes == METADATA;
        self.key_bytes.clear();
    }

    /// One byte outside strings.
    fn structural_byte(&mut self, b: u8, out: &mut Vec<u8>) {
        match b {
            b'"' => {
                self.in_string = true;
                self.escape = false;
                let top = self.stack.last().copied();
                match top {
                    Some(f) if f.object && f.expect_key => {
                        self.key_bytes.clear();
                        if f.metadata {
                            self.key = Key::Held;
                            return;
                        }
                        self.key = Key::Plain;
                    }
                    _ => self.after_metadata_key = false,
                }
                out.push(b);
            }
            b'{' | b'[' => {
                let metadata = b == b'{' && self.after_metadata_key;
                self.after_metadata_key = false;
                self.stack.push(Open {
                    object: b == b'{',
                    metadata,
                    expect_key: b == b'{',
                    wrote_member: false,
                    comma_pending: false,
                });
                out.push(b);
            }
            b'}' | b']' => {
                self.after_metadata_key = false;
                self.stack.pop();
                out.push(b);
            }
            b',' => {
                self.after_metadata_key = false;
                match self.stack.last_mut() {
                    Some(f) if f.object => {
                        f.expect_key = true;
                        if f.metadata {
                            f.comma_pending = true;
                            return;
                        }
                    }
                    _ => {}
                }
                out.push(b);
            }
            b':' => out.push(b),
            b' ' | b'\t' | b'\r' | b'\n' => {
                // Whitespace between a held comma and its key is dropped with them.
                if !self.stack.last().is_some_and(|f| f.comma_pending) {
                    out.push(b);
                }
            }
            _ => {
                // A literal's byte (number, true, false, null).
                self.after_metadata_key = false;
                out.push(b);
            }
        }
    }

    /// Skips the `managedFields` member's colon and value; returns the bytes consumed. The
    /// byte that ends a bare literal (`,` or `}`) is not consumed.
    fn skip_bytes(&mut self, chunk: &[u8]) -> usize {
        let Some(mut s) = self.skip else { return 0 };
        let mut consumed = 0;
        for &b in chunk {
            if s.literal {
                if matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace() {
                    self.skip = None;
                    return consumed;
                }
                consumed += 1;
                continue;
            }
            consumed += 1;
            if s.in_string {
                let end = !s.escape && b == b'"';
                s.escape = !s.escape && b == b'\\';
                if end {
                    s.in_string = false;
                    if s.depth == 0 {
                        self.skip = None;
                        return consumed;
                    }
                }
                continue;
            }
            if !s.value_started {
                // Whitespace until the colon.
                s.value_started = b == b':';
                continue;
            }
            match b {
                b'"' => {
                    s.in_string = true;
                    s.escape = false;
                }
                b'{' | b'[' => s.depth += 1,
                b'}' | b']' => {
                    s.depth = s.depth.saturating_sub(1);
                    if s.depth == 0 {
                        self.skip = None;
                        return consumed;
                    }
                }
                b if b.is_ascii_whitespace() => {}
                _ if s.depth == 0 => s.literal = true,
                _ => {}
            }
        }
        self.skip = Some(s);
        consumed
    }
}

/// Strips one whole document (tests, and answers read at once).
pub fn strip(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    Stripper::new().push(json, &mut out);
    out
}

/// What [`Stripper`] does to the bytes, done to a parsed document: the specification its
/// tests and fuzz target compare it with. (A parsed value is at most 128 levels deep, so the
/// recursion is bounded.)
pub fn strip_value(v: &mut serde_json::Value) {
    fn walk(v: &mut serde_json::Value, parent_is_metadata: bool) {
        match v {
            serde_json::Value::Object(map) => {
                if parent_is_metadata {
                    map.remove("managedFields");
                }
                for (k, child) in map.iter_mut() {
                    walk(child, k == "metadata");
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|c| walk(c, false)),
            _ => {}
        }
    }
    walk(v, false)
}

/// Whether the answers to requests for `path` are stripped: every API group but the core one
/// (`/api/v1`), whose Secrets' managed fields esox reads.
fn strips(path: &str) -> bool {
    path.starts_with("/apis/")
}

/// The client layer: wraps the bodies of answers under `/apis/` in a [`Stripper`].
#[derive(Clone, Copy, Debug, Default)]
pub struct StripManagedFieldsLayer;

impl<S> Layer<S> for StripManagedFieldsLayer {
    type Service = StripManagedFields<S>;
    fn layer(&self, inner: S) -> Self::Service {
        StripManagedFields { inner }
    }
}

/// The service [`StripManagedFieldsLayer`] makes.
#[derive(Clone, Debug)]
pub struct StripManagedFields<S> {
    inner: S,
}

impl<S, ReqB, B> Service<http::Request<ReqB>> for StripManagedFields<S>
where
    S: Service<http::Request<ReqB>, Response = http::Response<B>>,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Unpin,
{
    type Response = http::Response<StrippedBody<B>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqB>) -> Self::Future {
        let strip = strips(req.uri().path());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await?;
            Ok(res.map(|inner| StrippedBody {
                inner,
                stripper: strip.then(Stripper::new),
            }))
        })
    }
}

/// An answer's body, stripped on the fly (or passed through).
#[derive(Debug)]
pub struct StrippedBody<B> {
    inner: B,
    stripper: Option<Stripper>,
}

impl<B: Body<Data = Bytes> + Unpin> Body for StrippedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        loop {
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => frame,
                other => return other,
            };
            let Some(stripper) = this.stripper.as_mut() else {
                return Poll::Ready(Some(Ok(frame)));
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            };
            let mut out = Vec::new();
            stripper.push(&data, &mut out);
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
            }
            // All of this chunk was managed fields: read on.
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.stripper {
            // Shorter by an unknown amount.
            Some(_) => http_body::SizeHint::default(),
            None => self.inner.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// The reference: the same document with every `metadata.managedFields` removed by
    /// serde_json (documents shallow enough for it).
    fn reference(doc: &Value) -> Value {
        let mut v = doc.clone();
        strip_value(&mut v);
        v
    }

    fn check(doc: &Value) {
        let text = serde_json::to_vec(doc).unwrap();
        let want = reference(doc);
        let got: Value = serde_json::from_slice(&strip(&text))
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&strip(&text))));
        assert_eq!(got, want);
        // Split anywhere: the same result.
        for at in 0..text.len() {
            let mut s = Stripper::new();
            let mut out = Vec::new();
            s.push(&text[..at], &mut out);
            s.push(&text[at..], &mut out);
            assert_eq!(
                serde_json::from_slice::<Value>(&out).unwrap(),
                want,
                "split at {at}"
            );
        }
    }

    fn managed() -> Value {
        json!([{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {"f:a": {}}}, "time": "2026-01-01T00:00:00Z"}])
    }

    #[test]
    fn removes_the_member_wherever_it_stands() {
        check(&json!({"metadata": {"managedFields": managed(), "name": "a", "uid": "u"}}));
        check(&json!({"metadata": {"name": "a", "managedFields": managed(), "uid": "u"}}));
        check(&json!({"metadata": {"name": "a", "uid": "u", "managedFields": managed()}}));
        check(&json!({"metadata": {"managedFields": managed()}}));
        check(&json!({"metadata": {"managedFields": null, "name": "x"}}));
        check(&json!({"metadata": {"managedFields": [], "name": "x"}}));
    }

    #[test]
    fn a_list_and_a_watch_event() {
        let item = |n: &str| {
            json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                "metadata": {"name": n, "labels": {"metadata": "managedFields"}, "managedFields": managed()},
                "spec": {"metadata": {"x": 1}, "managedFields": "kept: not under metadata",
                    "target": {"template": {"metadata": {"labels": {"a": "b"}}}}},
                "status": {"conditions": [{"type": "Ready", "message": "\"managedFields\": \\ {"}]}})
        };
        check(
            &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "7"},
            "items": [item("a"), item("b")]}),
        );
        check(&json!({"type": "MODIFIED", "object": item("c")}));
    }

    #[test]
    fn a_stream_of_events_separated_by_newlines() {
        let a = json!({"type": "ADDED", "object": {"metadata": {"name": "a", "managedFields": managed()}}});
        let b = json!({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}});
        let text = format!("{a}\n{b}\n");
        let out = strip(text.as_bytes());
        let lines: Vec<Value> = out
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines, vec![reference(&a), reference(&b)]);
    }

    #[test]
    fn escapes_and_lookalike_keys() {
        check(
            &json!({"metadata": {"name": "a\"b\\", "managedFieldsX": 1, "managedField": 2,
            "annotations": {"managedFields": "kept: an annotation"}, "managedFields": managed()}}),
        );
        check(
            &json!({"metadata\\": {"managedFields": [1]}, "x": {"metadata": 1, "managedFields": 2}}),
        );
    }

    #[test]
    fn whitespace_as_a_pretty_printer_writes_it() {
        let doc = json!({"metadata": {"name": "a", "managedFields": managed(), "uid": "u"}, "items": [1, 2]});
        let text = serde_json::to_vec_pretty(&doc).unwrap();
        let got: Value = serde_json::from_slice(&strip(&text)).unwrap();
        assert_eq!(got, reference(&doc));
    }

    #[test]
    fn managed_fields_too_deep_for_serde_json_go_away_without_recursion() {
        let depth = 100_000;
        let mut deep = String::new();
        for _ in 0..depth {
            deep.push_str("{\"f:a\":");
        }
        deep.push_str("{}");
        for _ in 0..depth {
            deep.push('}');
        }
        let doc = format!(
            r#"{{"metadata":{{"name":"deep","managedFields":[{{"manager":"m","fieldsV1":{deep}}}]}},"spec":{{}}}}"#
        );
        assert!(
            serde_json::from_str::<Value>(&doc).is_err(),
            "too deep as sent"
        );
        let got: Value = serde_json::from_slice(&strip(doc.as_bytes())).unwrap();
        assert_eq!(got, json!({"metadata": {"name": "deep"}, "spec": {}}));
    }

    /// What the apiserver answers for a SecretStore whose provider block is 300 levels deep:
    /// its managed fields mirror every level.
    #[test]
    fn a_store_with_deep_managed_fields_decodes_once_stripped() {
        let levels = 300;
        let spec = format!("{}\"leaf\"{}", "{\"a\":".repeat(levels), "}".repeat(levels));
        let fields = format!("{}{{}}{}", "{\"f:a\":".repeat(levels), "}".repeat(levels));
        let doc = format!(
            r#"{{"apiVersion":"external-secrets.io/v1","kind":"SecretStore","metadata":{{"name":"deep","namespace":"n","managedFields":[{{"apiVersion":"external-secrets.io/v1","fieldsType":"FieldsV1","fieldsV1":{{"f:spec":{{"f:provider":{{"f:vault":{fields}}}}}}},"manager":"kubectl-create","operation":"Update","time":"2026-12-06T09:00:00Z"}}]}},"spec":{{"provider":{{"vault":{spec}}}}}}}"#
        );
        let err = serde_json::from_str::<crate::api::SecretStore>(&doc).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");
        let store: crate::api::SecretStore =
            serde_json::from_slice(&strip(doc.as_bytes())).unwrap();
        assert_eq!(store.metadata.name.as_deref(), Some("deep"));
        assert!(store.metadata.managed_fields.is_none());
    }

    #[test]
    fn only_api_groups_are_stripped() {
        assert!(strips("/apis/external-secrets.io/v1/externalsecrets"));
        assert!(strips(
            "/apis/generators.external-secrets.io/v1alpha1/namespaces/a/passwords"
        ));
        assert!(!strips("/api/v1/namespaces/a/secrets"));
    }

    #[tokio::test]
    async fn the_body_is_stripped_chunk_by_chunk() {
        use http_body_util::{BodyExt, StreamBody};
        let doc = json!({"metadata": {"name": "a", "managedFields": managed()}, "spec": {}});
        let text = serde_json::to_vec(&doc).unwrap();
        let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = text
            .chunks(7)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let body = StrippedBody {
            inner: StreamBody::new(futures::stream::iter(chunks)),
            stripper: Some(Stripper::new()),
        };
        let bytes = body.collect().await.unwrap().to_bytes();
        let got: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(got, reference(&doc));
    }
}
