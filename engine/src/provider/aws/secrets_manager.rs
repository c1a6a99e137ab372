//! AWS Secrets Manager.
//!
//! `get` is one `GetSecretValue` (version stage, or `uuid/<versionId>` as ESO spells version
//! ids). `find` by path or tags is one paginated `BatchGetSecretValue` with filters (values
//! included, 20 per page); by name regexp — which no AWS filter expresses — it lists names with
//! `ListSecrets` and fetches the matches with `BatchGetSecretValue`, 20 per call. AWS filters
//! match keys and values separately, so exact tag pairs and path prefixes are checked here.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, SecretValueEntry};
use regex::Regex;

use super::errors::{classify, is_not_found};
use super::{check_identity, endpoint_env, sts_client};
use crate::provider::{FindQuery, GetRequest, Provider, ProviderError};
use crate::secret::SecretBytes;

/// Secrets Manager provider.
pub struct SecretsManager {
    client: Client,
    sts: aws_sdk_sts::Client,
    prefix: String,
}

impl SecretsManager {
    /// Builds clients from the store's SDK configuration.
    pub fn new(conf: &SdkConfig, prefix: String) -> Self {
        let mut b = aws_sdk_secretsmanager::config::Builder::from(conf);
        if let Some(url) = endpoint_env("AWS_SECRETSMANAGER_ENDPOINT") {
            b = b.endpoint_url(url);
        }
        SecretsManager {
            client: Client::from_conf(b.build()),
            sts: sts_client(conf),
            prefix,
        }
    }

    fn id(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn strip<'a>(&self, name: &'a str) -> &'a str {
        name.strip_prefix(self.prefix.as_str()).unwrap_or(name)
    }

    async fn tags_json(&self, key: &str) -> Result<SecretBytes, ProviderError> {
        let out = self
            .client
            .describe_secret()
            .secret_id(self.id(key))
            .send()
            .await
            .map_err(|e| {
                if is_not_found(&e) {
                    ProviderError::NoSecret {
                        key: key.to_string(),
                        version: None,
                    }
                } else {
                    classify(e, "secretsmanager:DescribeSecret")
                }
            })?;
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

    async fn batch_by_ids(
        &self,
        ids: Vec<String>,
        out: &mut BTreeMap<String, SecretBytes>,
    ) -> Result<(), ProviderError> {
        for chunk in ids.chunks(20) {
            let resp = self
                .client
                .batch_get_secret_value()
                .set_secret_id_list(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| classify(e, "secretsmanager:BatchGetSecretValue"))?;
            for entry in resp.secret_values() {
                self.insert(entry, out);
            }
        }
        Ok(())
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
    async fn get(&self, req: &GetRequest) -> Result<SecretBytes, ProviderError> {
        if req.metadata {
            return self.tags_json(&req.key).await;
        }
        let mut call = self.client.get_secret_value().secret_id(self.id(&req.key));
        call = match req.version.as_deref() {
            None => call.version_stage("AWSCURRENT"),
            Some(v) => match v.strip_prefix("uuid/") {
                Some(id) => call.version_id(id),
                None => call.version_stage(v),
            },
        };
        let out = call.send().await.map_err(|e| {
            if is_not_found(&e) {
                ProviderError::NoSecret {
                    key: req.key.clone(),
                    version: req.version.clone(),
                }
            } else {
                classify(e, "secretsmanager:GetSecretValue")
            }
        })?;
        Ok(value_of(
            out.secret_string(),
            out.secret_binary().map(|b| b.as_ref()),
        ))
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
        if regex.is_none() && !filters.is_empty() && query.tags.is_empty() {
            // Path only: the batch call filters and returns values in one paginated call.
            let mut token = None;
            loop {
                let resp = self
                    .client
                    .batch_get_secret_value()
                    .set_filters(Some(filters.clone()))
                    .max_results(20)
                    .set_next_token(token)
                    .send()
                    .await
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
        // Names (and tags, which batch results do not carry) come from ListSecrets; values
        // from BatchGetSecretValue, 20 per call.
        let mut ids = Vec::new();
        let mut token = None;
        loop {
            let resp = self
                .client
                .list_secrets()
                .set_filters((!filters.is_empty()).then(|| filters.clone()))
                .max_results(100)
                .set_next_token(token)
                .send()
                .await
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

    async fn validate(&self) -> Result<Option<String>, ProviderError> {
        check_identity(&self.sts).await
    }
}
