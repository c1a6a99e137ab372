//! Vault paths from a store's `path` (the mount) and `version` and a remote key, exactly as
//! ESO's `buildPath` and `buildMetadataPath` make them (`client_get.go`).

/// The store's path settings.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `spec.provider.vault.path`.
    pub mount: Option<String>,
    /// KV v1 (else v2).
    pub v1: bool,
    /// Keys are always relative to the mount (the OpenBao block: `<mount>/data/<key>`).
    pub literal: bool,
}

impl Paths {
    /// `key` without the mount prefix (and, on v2, a `data/` after it), when the mount is
    /// set and the key starts with it. ESO's known quirk: a key whose first segment equals
    /// the mount's name loses it.
    fn strip<'a>(&self, mount: &str, key: &'a str) -> &'a str {
        let cut = format!("{mount}/");
        match key.strip_prefix(cut.as_str()) {
            Some(rest) if !self.v1 => rest.strip_prefix("data/").unwrap_or(rest),
            Some(rest) => rest,
            None => key,
        }
    }

    /// The path a secret's data is read from.
    pub fn data(&self, key: &str) -> String {
        if self.literal {
            let mount = self.mount.as_deref().unwrap_or("kv");
            return if self.v1 {
                format!("{mount}/{key}")
            } else {
                format!("{mount}/data/{key}")
            };
        }
        match &self.mount {
            Some(mount) => {
                let rest = self.strip(mount, key);
                if self.v1 {
                    format!("{mount}/{rest}")
                } else {
                    format!("{mount}/data/{rest}")
                }
            }
            None if !self.v1 && !key.contains("/data/") => match key.split_once('/') {
                Some((first, rest)) => format!("{first}/data/{rest}"),
                None => format!("{key}/data"),
            },
            None => key.to_string(),
        }
    }

    /// The path a secret's metadata is read (and a folder listed) from; on KV v1 the data
    /// itself.
    pub fn metadata(&self, key: &str) -> Result<String, String> {
        if self.literal {
            let mount = self.mount.as_deref().unwrap_or("kv");
            return Ok(if self.v1 {
                format!("{mount}/{key}")
            } else {
                format!("{mount}/metadata/{key}")
            });
        }
        match (&self.mount, self.v1) {
            (Some(mount), true) => Ok(format!("{mount}/{key}")),
            (None, true) => Err(
                "spec.provider.vault.path is required to read metadata or find secrets on kv version v1"
                    .into(),
            ),
            (None, false) if !key.contains("data") => {
                Err("provided Path isn't a valid kv v2 path".into())
            }
            (None, false) => Ok(key.replacen("/data/", "/metadata/", 1)),
            (Some(mount), false) => Ok(format!("{mount}/metadata/{}", self.strip(mount, key))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(mount: Option<&str>, v1: bool) -> Paths {
        Paths {
            mount: mount.map(str::to_string),
            v1,
            literal: false,
        }
    }

    /// The examples of ESO's `buildPath` comment and `TestGetSecretPath`.
    #[test]
    fn data_paths_are_built_as_eso_builds_them() {
        let v2 = paths(Some("secret/path"), false);
        assert_eq!(v2.data("foo"), "secret/path/data/foo");
        assert_eq!(v2.data("secret/path/foo"), "secret/path/data/foo");
        assert_eq!(v2.data("secret/path/data/foo"), "secret/path/data/foo");
        let v1 = paths(Some("secret/path"), true);
        assert_eq!(v1.data("foo"), "secret/path/foo");
        assert_eq!(v1.data("secret/path/foo"), "secret/path/foo");
        let no_mount = paths(None, false);
        assert_eq!(no_mount.data("secret/path/foo"), "secret/data/path/foo");
        assert_eq!(
            no_mount.data("secret/path/data/foo"),
            "secret/path/data/foo"
        );
        assert_eq!(paths(None, true).data("secret/path/foo"), "secret/path/foo");
        // The mount named again in the key is dropped, ESO's known quirk included.
        assert_eq!(
            paths(Some("secret"), false).data("secret/x"),
            "secret/data/x"
        );
    }

    #[test]
    fn metadata_paths_are_built_as_eso_builds_them() {
        let v2 = paths(Some("secret/path"), false);
        assert_eq!(v2.metadata("foo").unwrap(), "secret/path/metadata/foo");
        assert_eq!(
            v2.metadata("secret/path/foo").unwrap(),
            "secret/path/metadata/foo"
        );
        assert_eq!(v2.metadata("").unwrap(), "secret/path/metadata/");
        assert_eq!(v2.metadata("dev/").unwrap(), "secret/path/metadata/dev/");
        assert_eq!(
            paths(Some("secret_v1"), true).metadata("foo").unwrap(),
            "secret_v1/foo"
        );
        let no_mount = paths(None, false);
        assert_eq!(
            no_mount.metadata("secret/data/foo").unwrap(),
            "secret/metadata/foo"
        );
        assert_eq!(
            no_mount.metadata("secret/foo").unwrap_err(),
            "provided Path isn't a valid kv v2 path"
        );
        assert!(paths(None, true).metadata("foo").is_err());
    }

    #[test]
    fn openbao_paths_are_the_mount_and_the_key() {
        let bao = Paths {
            mount: Some("kv".into()),
            v1: false,
            literal: true,
        };
        assert_eq!(bao.data("kv/app"), "kv/data/kv/app");
        assert_eq!(bao.metadata("team").unwrap(), "kv/metadata/team");
    }
}
