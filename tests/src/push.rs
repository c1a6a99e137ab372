//! PushSecret helpers shared by the push tests: the source Secret, the Ready condition, and
//! waiting for a status or for the PushSecret to be gone (its finalizer done).

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, PostParams};

use crate::{TestEnv, wait_for};

/// Creates (or replaces) Secret `name` with `data` in the test namespace.
pub async fn source(env: &TestEnv, name: &str, data: &[(&str, &str)]) {
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.string_data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let api = env.secrets();
    if api.get_opt(name).await.unwrap().is_some() {
        api.replace(name, &PostParams::default(), &s).await.unwrap();
    } else {
        api.create(&PostParams::default(), &s).await.unwrap();
    }
}

/// The PushSecret's Ready condition as `(status, reason, message)`.
pub async fn ready(env: &TestEnv, name: &str) -> Option<(String, String, String)> {
    let api: Api<esox::api::PushSecret> = Api::namespaced(env.client.clone(), &env.ns);
    let c = api
        .get(name)
        .await
        .ok()?
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")?;
    Some((
        c.status,
        c.reason.unwrap_or_default(),
        c.message.unwrap_or_default(),
    ))
}

/// Waits (60 s) for the PushSecret's Ready condition to be `status`/`reason`; its message.
pub async fn wait_push(env: &TestEnv, name: &str, status: &str, reason: &str) -> String {
    let r = wait_for(
        Duration::from_secs(60),
        &format!("PushSecret {name} {status}/{reason}"),
        || async {
            ready(env, name)
                .await
                .filter(|(s, r, _)| s == status && r == reason)
                .map(|(_, _, m)| m)
        },
    )
    .await;
    match r {
        Ok(m) => m,
        Err(e) => panic!("{e}: last {:?}", ready(env, name).await),
    }
}

/// Deletes the PushSecret and waits (60 s) until it is gone.
pub async fn wait_gone(env: &TestEnv, name: &str) {
    let api: Api<esox::api::PushSecret> = Api::namespaced(env.client.clone(), &env.ns);
    api.delete(name, &DeleteParams::default()).await.unwrap();
    wait_for(
        Duration::from_secs(60),
        &format!("PushSecret {name} gone"),
        || async { api.get_opt(name).await.unwrap().is_none().then_some(()) },
    )
    .await
    .unwrap();
}
