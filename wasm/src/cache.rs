//! The on-disk cache of compiled plugin components.
//!
//! Compiling a component with Cranelift costs hundreds of milliseconds to seconds per plugin;
//! loading its compiled form costs about a millisecond. A controller that restarts (rollouts,
//! leader failover, OOM kills) should not pay the compile again, so compiled components are
//! kept on disk, keyed by everything that makes machine code valid for this process:
//!
//! - the engine's compatibility hash (`Engine::precompile_compatibility_hash`: wasmtime
//!   version, target, tunables, enabled features), which names the directory — a different
//!   wasmtime or a changed [`Config`](wasmtime::Config) never sees another's entries;
//! - the sha256 of the component itself, which names the file.
//!
//! An entry also carries the sha256 of the compiled bytes, checked before they are handed to
//! wasmtime: a truncated or corrupted file is recompiled, never loaded. Entries are written
//! to a temporary file and renamed, so a crash mid-write leaves no half entry.
//!
//! Loading compiled code is `unsafe` in wasmtime because the bytes become executable machine
//! code: whoever can write the cache directory can run code in the controller. The directory
//! must therefore be private to the controller (an `emptyDir` in the pod, a per-user cache
//! directory on a workstation), exactly like the binary itself. The digest check guards
//! against accidents, not against an attacker who can write there.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"ESOXCW01";

/// A compiled-component cache rooted at one directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

/// Where a component came from, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Loaded from a valid cache entry.
    Cache,
    /// Compiled (and stored when the cache is writable).
    Compiled,
}

impl Cache {
    /// A cache under `root/wasmtime-<engine compatibility hash>/`.
    pub fn new(engine: &Engine, root: &Path) -> Cache {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let dir = root.join(format!("wasmtime-{:016x}", h.finish()));
        Cache { dir }
    }

    /// The directory entries live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, component_sha: &str) -> PathBuf {
        self.dir.join(format!("{component_sha}.cwasm"))
    }

    /// The component from the cache when a valid entry exists, else compiled (and stored).
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, Source)> {
        let sha = hex::encode(Sha256::digest(bytes));
        let path = self.entry(&sha);
        if let Some(component) = self.read(engine, &path) {
            return Ok((component, Source::Cache));
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = self.write(&path, &component) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not store the compiled plugin; it will be compiled again next start");
        }
        Ok((component, Source::Compiled))
    }

    fn read(&self, engine: &Engine, path: &Path) -> Option<Component> {
        let file = std::fs::read(path).ok()?;
        let (header, compiled) = file.split_at_checked(MAGIC.len() + 32)?;
        let (magic, digest) = header.split_at(MAGIC.len());
        if magic != MAGIC || Sha256::digest(compiled).as_slice() != digest {
            tracing::warn!(path = %path.display(), "ignoring a corrupt compiled-plugin cache entry");
            return None;
        }
        // SAFETY: `compiled` is exactly what `Component::serialize` wrote for an engine with
        // this wasmtime version and compatibility hash (the directory name), from a
        // component with this sha256 (the file name), unmodified since (the digest above).
        // wasmtime re-checks version and engine settings in its own header and refuses a
        // mismatch. See the module documentation for why the directory must be private.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize(engine, compiled) };
        match loaded {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an incompatible compiled-plugin cache entry");
                None
            }
        }
    }

    fn write(&self, path: &Path, component: &Component) -> std::io::Result<()> {
        let compiled = component.serialize().map_err(std::io::Error::other)?;
        std::fs::create_dir_all(&self.dir)?;
        let mut out = Vec::with_capacity(MAGIC.len() + 32 + compiled.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&Sha256::digest(&compiled));
        out.extend_from_slice(&compiled);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &out)?;
        std::fs::rename(&tmp, path)
    }
}
