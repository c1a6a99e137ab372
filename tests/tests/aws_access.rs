//! Access denied and throttling, against a moto that enforces IAM and a throttling proxy in
//! front of moto. The controller runs as an `esox` process here, so it can be pointed at
//! these endpoints without touching the other tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use esox_tests::manifests::{aws_static_store, external_secret};
use esox_tests::{TestEnv, aws_config_for, put_aws_secret, secret_strings, stack_env, wait_for};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn access_denied_is_precise_and_batch_denial_falls_back() {
    let env = TestEnv::without_controller("aws-denied").await;
    let vars = stack_env().unwrap();
    let url = &vars["ESOX_MOTO_IAM_URL"];
    let sm = aws_sdk_secretsmanager::Client::new(
        &aws_config_for(url, &vars["ESOX_MOTO_IAM_ADMIN_KEY"]).await,
    );
    for name in ["a", "b"] {
        sm.create_secret()
            .name(format!("{}/{name}", env.ns))
            .secret_string(format!("value-{name}"))
            .send()
            .await
            .unwrap();
    }
    env.apply(&aws_static_store(
        "reader",
        "SecretsManager",
        &vars["ESOX_MOTO_IAM_READER_KEY"],
    ))
    .await
    .unwrap();
    env.apply(&aws_static_store(
        "no-access",
        "SecretsManager",
        &vars["ESOX_MOTO_IAM_NO_ACCESS_KEY"],
    ))
    .await
    .unwrap();
    // Two ExternalSecrets on the reader store sync together: their gets are batched, the
    // reader may not BatchGetSecretValue, and esox falls back to GetSecretValue.
    env.apply(&external_secret(
        "read-a",
        "reader",
        "1h",
        &[("value", &format!("{}/a", env.ns))],
    ))
    .await
    .unwrap();
    env.apply(&external_secret(
        "read-b",
        "reader",
        "1h",
        &[("value", &format!("{}/b", env.ns))],
    ))
    .await
    .unwrap();
    env.apply(&external_secret(
        "denied",
        "no-access",
        "1h",
        &[("value", &format!("{}/a", env.ns))],
    ))
    .await
    .unwrap();
    let _controller = env.spawn_controller(&[("AWS_ENDPOINT_URL", url)]);

    for (es, value) in [("read-a", "value-a"), ("read-b", "value-b")] {
        let s = env
            .wait_secret(es, "synced as reader", |s| s.data.is_some())
            .await;
        assert_eq!(secret_strings(&s)["value"], value);
    }
    let msg = env.wait_ready("denied", "False", "SecretSyncedError").await;
    assert!(
        msg.contains("access denied: secretsmanager:GetSecretValue"),
        "{msg}"
    );
    assert!(
        msg.contains("user/no-access is not authorized to perform: secretsmanager:GetSecretValue"),
        "{msg}"
    );
    assert!(env.secrets().get_opt("denied").await.unwrap().is_none());
}

/// A proxy in front of moto that answers Secrets Manager reads with ThrottlingException while
/// `throttle` is set.
async fn throttling_proxy(
    upstream: String,
    throttle: Arc<AtomicBool>,
    throttled: Arc<AtomicUsize>,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let (upstream, throttle, throttled) =
                (upstream.clone(), throttle.clone(), throttled.clone());
            tokio::spawn(async move {
                let mut client = BufReader::new(client);
                loop {
                    let Some((head, body)) = read_message(&mut client).await else {
                        return;
                    };
                    let target = head
                        .lines()
                        .find(|l| l.to_ascii_lowercase().starts_with("x-amz-target:"))
                        .unwrap_or_default()
                        .to_string();
                    if throttle.load(Ordering::SeqCst) && target.contains("GetSecretValue") {
                        throttled.fetch_add(1, Ordering::SeqCst);
                        let body = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
                        let resp = format!(
                            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-ErrorType: ThrottlingException\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if client.get_mut().write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    let Ok(up) = TcpStream::connect(upstream.trim_start_matches("http://")).await
                    else {
                        return;
                    };
                    let mut up = BufReader::new(up);
                    let _ = up.get_mut().write_all(head.as_bytes()).await;
                    let _ = up.get_mut().write_all(&body).await;
                    let Some((rhead, rbody)) = read_message(&mut up).await else {
                        return;
                    };
                    if client.get_mut().write_all(rhead.as_bytes()).await.is_err()
                        || client.get_mut().write_all(&rbody).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

/// Reads one HTTP/1.1 message (head with its blank line, and a Content-Length body).
async fn read_message(r: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).await.ok()?;
    Some((head, body))
}

#[tokio::test]
async fn throttling_never_flaps_ready_on_a_synced_secret() {
    let env = TestEnv::without_controller("aws-throttle").await;
    let vars = stack_env().unwrap();
    let key = format!("{}/paced", env.ns);
    put_aws_secret(&key, "steady", &[]).await;
    let (throttle, throttled) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let proxy = throttling_proxy(
        vars["ESOX_MOTO_URL"].clone(),
        throttle.clone(),
        throttled.clone(),
    )
    .await;
    env.apply(&aws_static_store("aws", "SecretsManager", "AKIDTHROTTLE:s"))
        .await
        .unwrap();
    env.apply(&external_secret("paced", "aws", "1s", &[("value", &key)]))
        .await
        .unwrap();
    let controller = env.spawn_controller(&[("AWS_ENDPOINT_URL", &proxy)]);
    env.wait_secret("paced", "synced", |s| s.data.is_some())
        .await;
    env.wait_ready("paced", "True", "SecretSynced").await;

    // Throttled: the SDK retries with backoff and adaptive pacing, then esox backs off per
    // object. Through all of it the synced Secret stays Ready, with no warning event.
    throttle.store(true, Ordering::SeqCst);
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let es = env.external_secrets().get("paced").await.unwrap();
        let ready = es
            .status
            .unwrap()
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("True", Some("SecretSynced")),
            "Ready flapped while throttled: {ready:?}"
        );
        if controller
            .metrics()
            .await
            .contains(r#"call="GetSecretValue",status="error""#)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "a throttled call should have surfaced within a minute"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        throttled.load(Ordering::SeqCst) > 1,
        "the SDK retried throttled calls"
    );
    assert!(
        !env.events_for("paced")
            .await
            .iter()
            .any(|e| e.starts_with("UpdateFailed")),
        "no warning events while throttled"
    );
    assert_eq!(
        secret_strings(&env.secrets().get("paced").await.unwrap())["value"],
        "steady"
    );

    // The provider recovers: refreshes resume.
    throttle.store(false, Ordering::SeqCst);
    put_aws_secret(&key, "after-throttling", &[]).await;
    wait_for(
        Duration::from_secs(60),
        "refresh after throttling",
        || async {
            let s = env.secrets().get("paced").await.ok()?;
            (secret_strings(&s)["value"] == "after-throttling").then_some(())
        },
    )
    .await
    .unwrap();
}
