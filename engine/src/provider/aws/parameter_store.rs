//! AWS Systems Manager Parameter Store.
//!
//! `get` is one `GetParameter` (with decryption; `version` selects `name:version`). `find` by
//! path is `GetParametersByPath` (recursive, values included); by name regexp or tags it lists
//! names with `DescribeParameters` and fetches values with `GetParameters`, 10 per call — where
//! ESO makes one call per parameter (ESO issue #1193).
//!
//! PushSecret, DeleteSecret and SecretExists: [`push`].

pub mod push;

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_ssm::Client;
use aws_sdk_ssm::error::ProvideErrorMetadata as _;
use aws_sdk_ssm::types::ParameterStringFilter;
use regex::Regex;

use super::errors::{classify, classify_get, is_not_found};
use super::{check_identity, endpoint_env, sts_client};
use crate::provider::{
    Calls, Capabilities, Fetched, FindQuery, GetRequest, Provider, ProviderError, PushOutcome,
    PushSecretData, Recorded, SourceSecret,
};
use crate::secret::SecretBytes;

/// Parameter Store provider.
pub struct ParameterStore {
    client: Client,
    calls: Calls,
    sts: aws_sdk_sts::Client,
    prefix: String,
}

impl ParameterStore {
    /// Builds clients from the store's SDK configuration.
    pub(crate) fn new(conf: &SdkConfig, prefix: String, calls: Calls) -> Self {
        let mut b = aws_sdk_ssm::config::Builder::from(conf);
        if let Some(url) = endpoint_env("AWS_SSM_ENDPOINT") {
            b = b.endpoint_url(url);
        }
        ParameterStore {
            client: Client::from_conf(b.build()),
            calls,
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
}

impl ParameterStore {
    /// One parameter's value (or, `metadataPolicy: Fetch`, its tags as JSON).
    async fn value(&self, req: &GetRequest) -> Result<SecretBytes, ProviderError> {
        if req.metadata {
            let out = self
                .client
                .list_tags_for_resource()
                .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
                .resource_id(self.id(&req.key))
                .send()
                .await
                .recorded(&self.calls, "ListTagsForResource")
                .map_err(|e| {
                    if is_not_found(&e) || e.code() == Some("InvalidResourceId") {
                        ProviderError::NoSecret {
                            key: req.key.clone(),
                            version: None,
                        }
                    } else {
                        classify(e, "ssm:ListTagsForResource")
                    }
                })?;
            let tags: BTreeMap<&str, &str> = out
                .tag_list()
                .iter()
                .map(|t| (t.key(), t.value()))
                .collect();
            return Ok(SecretBytes::new(
                serde_json::to_vec(&tags).unwrap_or_default(),
            ));
        }
        let name = match &req.version {
            Some(v) => format!("{}:{v}", self.id(&req.key)),
            None => self.id(&req.key),
        };
        let out = self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .recorded(&self.calls, "GetParameter")
            .map_err(|e| classify_get(e, "ssm:GetParameter", &req.key, req.version.as_deref()))?;
        Ok(SecretBytes::from(
            out.parameter().and_then(|p| p.value()).unwrap_or_default(),
        ))
    }
}

#[async_trait]
impl Provider for ParameterStore {
    async fn get(&self, req: &GetRequest) -> Result<Fetched, ProviderError> {
        self.value(req).await.map(Fetched::json)
    }

    async fn find(
        &self,
        query: &FindQuery,
    ) -> Result<BTreeMap<String, SecretBytes>, ProviderError> {
        let regex = match &query.name_regexp {
            Some(r) => Some(Regex::new(r).map_err(|e| {
                ProviderError::InvalidConfig(format!("invalid find.name.regexp {r:?}: {e}"))
            })?),
            None => None,
        };
        let mut out = BTreeMap::new();
        if let (Some(path), None, true) = (&query.path, &regex, query.tags.is_empty()) {
            let mut token = None;
            loop {
                let resp = self
                    .client
                    .get_parameters_by_path()
                    .path(self.id(path))
                    .recursive(true)
                    .with_decryption(true)
                    .set_next_token(token)
                    .send()
                    .await
                    .recorded(&self.calls, "GetParametersByPath")
                    .map_err(|e| classify(e, "ssm:GetParametersByPath"))?;
                for p in resp.parameters() {
                    if let Some(name) = p.name() {
                        out.insert(
                            self.strip(name).to_string(),
                            SecretBytes::from(p.value().unwrap_or_default()),
                        );
                    }
                }
                token = resp.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
            return Ok(out);
        }
        let mut filters = Vec::new();
        for (k, v) in &query.tags {
            filters.push(
                ParameterStringFilter::builder()
                    .key(format!("tag:{k}"))
                    .option("Equals")
                    .values(v)
                    .build()
                    .map_err(|e| ProviderError::InvalidConfig(e.to_string()))?,
            );
        }
        if let Some(path) = &query.path {
            filters.push(
                ParameterStringFilter::builder()
                    .key("Path")
                    .option("Recursive")
                    .values(self.id(path))
                    .build()
                    .map_err(|e| ProviderError::InvalidConfig(e.to_string()))?,
            );
        }
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let resp = self
                .client
                .describe_parameters()
                .set_parameter_filters((!filters.is_empty()).then(|| filters.clone()))
                .set_next_token(token)
                .send()
                .await
                .recorded(&self.calls, "DescribeParameters")
                .map_err(|e| classify(e, "ssm:DescribeParameters"))?;
            for p in resp.parameters() {
                if let Some(name) = p.name()
                    && regex.as_ref().is_none_or(|r| r.is_match(self.strip(name)))
                {
                    names.push(name.to_string());
                }
            }
            token = resp.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        for chunk in names.chunks(10) {
            let resp = self
                .client
                .get_parameters()
                .set_names(Some(chunk.to_vec()))
                .with_decryption(true)
                .send()
                .await
                .recorded(&self.calls, "GetParameters")
                .map_err(|e| classify(e, "ssm:GetParameters"))?;
            for p in resp.parameters() {
                if let Some(name) = p.name() {
                    out.insert(
                        self.strip(name).to_string(),
                        SecretBytes::from(p.value().unwrap_or_default()),
                    );
                }
            }
        }
        Ok(out)
    }

    async fn validate(&self) -> Result<Option<String>, ProviderError> {
        check_identity(&self.sts, &self.calls).await
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
        self.delete_pushed(data).await
    }

    async fn secret_exists(&self, data: &PushSecretData) -> Result<bool, ProviderError> {
        self.exists(data).await
    }
}
