//! AWS Secrets Manager.
//!
//! - `get` of the current version: single gets issued within a few milliseconds of each other
//!   (many ExternalSecrets refreshing together, or one with many keys) are sent as one
//!   `BatchGetSecretValue` of up to 20 ids; a lone get is a plain `GetSecretValue`. If the
//!   identity may not call `BatchGetSecretValue` (the seeds' IAM policy grants only
//!   `GetSecretValue`), the provider says so once in the log and stops batching.
//! - `get` of a version: `GetSecretValue` with the stage, or the id for `uuid/<versionId>` (ESO's
//!   spelling).
//! - `find` by path: one paginated `BatchGetSecretValue` with a name filter (values included).
//!   By name regexp or tags — which AWS filters do not express exactly (they match tag keys and
//!   values separately) — names come from `ListSecrets` and values from `BatchGetSecretValue`,
//!   20 per call; exact tag pairs and path prefixes are checked here.

mod push;

pub use push::{DeleteOptions, PushMetadata, parse_metadata, set_property};

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, SecretValueEntry};
use regex::Regex;
use tokio::sync::oneshot;
use tracing::warn;

use super::errors::{classify, classify_get};
use super::{check_identity, endpoint_env, sts_client};
use crate::provider::{
    Calls, Capabilities, Fetched, FindQuery, GetRequest, Provider, ProviderError, PushOutcome,
    PushSecretData, Recorded, SourceSecret,
};
use crate::secret::SecretBytes;

/// How long a single get waits for others to batch with.
const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// `BatchGetSecretValue` takes at most 20 ids.
const BATCH_MAX: usize = 20;

type Reply = oneshot::Sender<Result<SecretBytes, ProviderError>>;

/// Secrets Manager provider.
pub struct SecretsManager {
    api: Api,
    sts: aws_sdk_sts::Client,
    prefix: String,
    pending: Arc<Mutex<Vec<(String, String, Reply)>>>,
    delete_options: DeleteOptions,
}

/// The SDK client with call counting, shared with the batch flush task.
#[derive(Clone)]
struct Api {
    client: Client,
    calls: Calls,
    batch_denied: Arc<AtomicBool>,
}

impl SecretsManager {
    /// Builds clients from the store's SDK configuration.
    pub(crate) fn new(conf: &SdkConfig, prefix: String, calls: Calls) -> Self {
        let mut b = aws_sdk_secretsmanager::config::Builder::from(conf);
        if let Some(url) = endpoint_env("AWS_SECRETSMANAGER_ENDPOINT") {
            b = b.endpoint_url(url);
        }
        SecretsManager {
            api: Api {
                client: Client::from_conf(b.build()),
                calls,
                batch_denied: Arc::new(AtomicBool::new(false)),
            },
            sts: sts_client(conf),
            prefix,
            pending: Arc::default(),
            delete_options: DeleteOptions::default(),
        }
    }

    /// How pushed secrets are deleted (the store's `secretsManager` options).
    pub(crate) fn with_delete_options(mut self, options: DeleteOptions) -> Self {
        self.delete_options = options;
        self
    }

    fn id(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn strip<'a>(&self, name: &'a str) -> &'a str {
        name.strip_prefix(self.prefix.as_str()).unwrap_or(name)
    }

    async fn tags_json(&self, key: &str) -> Result<SecretBytes, ProviderError> {
        let out = self
            .api
            .client
            .describe_secret()
            .secret_id(self.id(key))
            .send()
            .await
            .recorded(&self.api.calls, "DescribeSecret")
            .map_err(|e| classify_get(e, "secretsmanager:DescribeSecret", key, None))?;
        let tags: BTreeMap<String, String> = out
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect();
        Ok(SecretBytes::new(
            serde_json::to_vec(&tags).unwrap_or_default(),
        ))
    }

    /// Queues a get of the current version for the next batch.
    async fn get_current(&self, key: &str) -> Result<SecretBytes, ProviderError> {
        if self.api.batch_denied.load(Ordering::Relaxed) {
            return self.api.get_one(key.to_string(), self.id(key), None).await;
        }
        let (tx, rx) = oneshot::channel();
        let first = {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pending.push((key.to_string(), self.id(key), tx));
            pending.len() == 1
        };
        if first {
            let api = self.api.clone();
            let pending = self.pending.clone();
            tokio::spawn(async move {
                tokio::time::sleep(BATCH_WINDOW).await;
                let batch = std::mem::take(
                    &mut *pending
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                );
                api.flush(batch).await;
            });
        }
        rx.await.unwrap_or_else(|_| {
            Err(ProviderError::Unavailable(
                "secretsmanager: batched request was dropped".into(),
            ))
        })
    }

    fn insert(&self, entry: &SecretValueEntry, out: &mut BTreeMap<String, SecretBytes>) {
        let Some(name) = entry.name() else { return };
        out.insert(
            self.strip(name).to_string(),
            value_of(
                entry.secret_string(),
                entry.secret_binary().map(|b| b.as_ref()),
            ),
        );
    }

    async fn batch_by_ids(
        &self,
        ids: Vec<String>,
        out: &mut BTreeMap<String, SecretBytes>,
    ) -> Result<(), ProviderError> {
        for chunk in ids.chunks(BATCH_MAX) {
            let resp = self
                .api
                .client
                .batch_get_secret_value()
                .set_secret_id_list(Some(chunk.to_vec()))
                .send()
                .await
                .recorded(&self.api.calls, "BatchGetSecretValue")
                .map_err(|e| classify(e, "secretsmanager:BatchGetSecretValue"))?;
            for entry in resp.secret_values() {
                self.insert(entry, out);
            }
        }
        Ok(())
    }
}

impl Api {
    async fn get_one(
        &self,
        key: String,
        id: String,
        version: Option<String>,
    ) -> Result<SecretBytes, ProviderError> {
        let mut call = self.client.get_secret_value().secret_id(id);
        call = match version.as_deref() {
            None => call.version_stage("AWSCURRENT"),
            Some(v) => match v.strip_prefix("uuid/") {
                Some(vid) => call.version_id(vid),
                None => call.version_stage(v),
            },
        };
        let out = call
            .send()
            .await
            .recorded(&self.calls, "GetSecretValue")
            .map_err(|e| {
                classify_get(e, "secretsmanager:GetSecretValue", &key, version.as_deref())
            })?;
        Ok(value_of(
            out.secret_string(),
            out.secret_binary().map(|b| b.as_ref()),
        ))
    }

    /// Answers a batch of queued gets: one `GetSecretValue` for a lone id, else
    /// `BatchGetSecretValue` per 20 ids (falling back to single gets when it is denied).
    async fn flush(&self, batch: Vec<(String, String, Reply)>) {
        let mut waiting: HashMap<String, Vec<(String, Reply)>> = HashMap::new();
        for (key, id, reply) in batch {
            waiting.entry(id).or_default().push((key, reply));
        }
        let ids: Vec<String> = waiting.keys().cloned().collect();
        if ids.len() == 1 || self.batch_denied.load(Ordering::Relaxed) {
            self.answer_singly(waiting).await;
            return;
        }
        for chunk in ids.chunks(BATCH_MAX) {
            match self
                .client
                .batch_get_secret_value()
                .set_secret_id_list(Some(chunk.to_vec()))
                .send()
                .await
                .recorded(&self.calls, "BatchGetSecretValue")
            {
                Ok(resp) => {
                    for entry in resp.secret_values() {
                        let value = value_of(
                            entry.secret_string(),
                            entry.secret_binary().map(|b| b.as_ref()),
                        );
                        for id in [entry.name(), entry.arn()].into_iter().flatten() {
                            for (_, reply) in waiting.remove(id).unwrap_or_default() {
                                let _ = reply.send(Ok(value.clone()));
                            }
                        }
                    }
                    for err in resp.errors() {
                        let Some(id) = err.secret_id() else { continue };
                        let not_found = err.error_code() == Some("ResourceNotFoundException");
                        for (key, reply) in waiting.remove(id).unwrap_or_default() {
                            let e = if not_found {
                                ProviderError::NoSecret { key, version: None }
                            } else {
                                ProviderError::Unavailable(format!(
                                    "secretsmanager:BatchGetSecretValue: {}: {}",
                                    err.error_code().unwrap_or_default(),
                                    err.message().unwrap_or_default()
                                ))
                            };
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                Err(e) => {
                    let err = classify(e, "secretsmanager:BatchGetSecretValue");
                    if matches!(err, ProviderError::AccessDenied(_)) {
                        warn!(error = %err, "BatchGetSecretValue is denied for this identity; fetching secrets one by one from now on");
                        self.batch_denied.store(true, Ordering::Relaxed);
                        let rest: HashMap<_, _> = chunk
                            .iter()
                            .filter_map(|id| waiting.remove_entry(id))
                            .collect();
                        self.answer_singly(rest).await;
                    } else {
                        for id in chunk {
                            for (_, reply) in waiting.remove(id).unwrap_or_default() {
                                let _ = reply.send(Err(err.clone()));
                            }
                        }
                    }
                }
            }
        }
        // Ids the batch answered neither way (should not happen): ask for them one by one.
        self.answer_singly(waiting).await;
    }

    async fn answer_singly(&self, waiting: HashMap<String, Vec<(String, Reply)>>) {
        for (id, replies) in waiting {
            let Some((key, _)) = replies.first() else {
                continue;
            };
            let result = self.get_one(key.clone(), id, None).await;
            for (_, reply) in replies {
                let _ = reply.send(result.clone());
            }
        }
    }
}

fn value_of(string: Option<&str>, binary: Option<&[u8]>) -> SecretBytes {
    match (string, binary) {
        (Some(s), _) => SecretBytes::from(s),
        (None, Some(b)) => SecretBytes::new(b.to_vec()),
        (None, None) => SecretBytes::default(),
    }
}

fn tags_match(
    have: &[aws_sdk_secretsmanager::types::Tag],
    want: &BTreeMap<String, String>,
) -> bool {
    want.iter().all(|(k, v)| {
        have.iter()
            .any(|t| t.key() == Some(k.as_str()) && t.value() == Some(v.as_str()))
    })
}

#[async_trait]
impl Provider for SecretsManager {
    async fn get(&self, req: &GetRequest) -> Result<Fetched, ProviderError> {
        if req.metadata {
            return self.tags_json(&req.key).await.map(Fetched::json);
        }
        match &req.version {
            None => self.get_current(&req.key).await,
            Some(_) => {
                self.api
                    .get_one(req.key.clone(), self.id(&req.key), req.version.clone())
                    .await
            }
        }
        .map(Fetched::json)
    }

    async fn find(
        &self,
        query: &FindQuery,
    ) -> Result<BTreeMap<String, SecretBytes>, ProviderError> {
        let path = query.path.as_ref().map(|p| self.id(p));
        let regex = match &query.name_regexp {
            Some(r) => Some(Regex::new(r).map_err(|e| {
                ProviderError::InvalidConfig(format!("invalid find.name.regexp {r:?}: {e}"))
            })?),
            None => None,
        };
        let mut filters = Vec::new();
        if let Some(p) = &path {
            filters.push(
                Filter::builder()
                    .key(FilterNameStringType::Name)
                    .values(p)
                    .build(),
            );
        }
        for (k, v) in &query.tags {
            filters.push(
                Filter::builder()
                    .key(FilterNameStringType::TagKey)
                    .values(k)
                    .build(),
            );
            filters.push(
                Filter::builder()
                    .key(FilterNameStringType::TagValue)
                    .values(v)
                    .build(),
            );
        }
        let mut out = BTreeMap::new();
        if regex.is_none() && path.is_some() && query.tags.is_empty() {
            // Path only: the batch call filters and returns values in one paginated call.
            let mut token = None;
            loop {
                let resp = self
                    .api
                    .client
                    .batch_get_secret_value()
                    .set_filters(Some(filters.clone()))
                    .max_results(BATCH_MAX as i32)
                    .set_next_token(token)
                    .send()
                    .await
                    .recorded(&self.api.calls, "BatchGetSecretValue")
                    .map_err(|e| classify(e, "secretsmanager:BatchGetSecretValue"))?;
                for entry in resp.secret_values() {
                    if path
                        .as_deref()
                        .is_none_or(|p| entry.name().is_some_and(|n| n.starts_with(p)))
                    {
                        self.insert(entry, &mut out);
                    }
                }
                token = resp.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
            return Ok(out);
        }
        let mut ids = Vec::new();
        let mut token = None;
        loop {
            let resp = self
                .api
                .client
                .list_secrets()
                .set_filters((!filters.is_empty()).then(|| filters.clone()))
                .max_results(100)
                .set_next_token(token)
                .send()
                .await
                .recorded(&self.api.calls, "ListSecrets")
                .map_err(|e| classify(e, "secretsmanager:ListSecrets"))?;
            for s in resp.secret_list() {
                let Some(name) = s.name() else { continue };
                let path_ok = path.as_deref().is_none_or(|p| name.starts_with(p));
                let name_ok = regex.as_ref().is_none_or(|r| r.is_match(self.strip(name)));
                if path_ok && name_ok && tags_match(s.tags(), &query.tags) {
                    ids.push(name.to_string());
                }
            }
            token = resp.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        self.batch_by_ids(ids, &mut out).await?;
        Ok(out)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ReadWrite
    }

    async fn push_secret(
        &self,
        secret: &SourceSecret,
        data: &PushSecretData,
    ) -> Result<PushOutcome, ProviderError> {
        self.push(secret, data).await
    }

    async fn delete_secret(&self, data: &PushSecretData) -> Result<(), ProviderError> {
        self.delete_pushed(&data.remote).await
    }

    async fn secret_exists(&self, data: &PushSecretData) -> Result<bool, ProviderError> {
        self.exists(&data.remote).await
    }

    async fn validate(&self) -> Result<Option<String>, ProviderError> {
        check_identity(&self.sts, &self.api.calls).await
    }
}
