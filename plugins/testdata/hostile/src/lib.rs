//! Test fixture: misbehaves (or takes its time) as its config says. The host must contain every behaviour: stop
//! it within its limits, or see that it could not reach anything.

use esox_plugin_sdk::generator::{Generated, PluginError, entry, error};

/// Misbehaves as `config` says: `"loop"` or `{"behaviour": "loop"}` (plugin objects carry
/// their config as a map), so the config is read by hand.
fn generate(config: &str) -> Result<Generated, PluginError> {
    let behaviour = match serde_json::from_str::<serde_json::Value>(config) {
        Ok(serde_json::Value::Object(m)) => m
            .get("behaviour")
            .and_then(|b| b.as_str())
            .unwrap_or_default()
            .to_string(),
        _ => config.trim().trim_matches('"').to_string(),
    };
    let data = match behaviour.as_str() {
        "ok" => vec![entry("value", b"fine")],
        // Busy for 200 ms (well inside a deadline), then fine: holds an instance slot.
        "slow" => {
            let started = std::time::Instant::now();
            while started.elapsed() < std::time::Duration::from_millis(200) {
                std::hint::black_box(());
            }
            vec![entry("value", b"fine")]
        }
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "alloc" => {
            // 4 GiB, touched so it cannot be optimised away.
            let mut v: Vec<u8> = Vec::new();
            for _ in 0..4096 {
                v.extend(std::iter::repeat_n(1u8, 1 << 20));
            }
            vec![entry("len", v.len().to_string().as_bytes())]
        }
        "output" => vec![entry("big", &vec![b'x'; 100 << 20])],
        // Over the 1 MiB output limit while well inside the memory limit.
        "output2m" => vec![entry("big", &vec![b'x'; 2 << 20])],
        "trap" => panic!("hostile plugin panics on purpose"),
        "file" => match std::fs::read("/etc/hostname") {
            Ok(bytes) => vec![entry("stolen", &bytes)],
            Err(e) => return Err(error(format!("file access failed: {e}"))),
        },
        "socket" => match std::net::TcpStream::connect("127.0.0.1:22") {
            Ok(_) => vec![entry("connected", b"yes")],
            Err(e) => return Err(error(format!("socket failed: {e}"))),
        },
        "env" => vec![entry(
            "env",
            format!("{}", std::env::vars().count()).as_bytes(),
        )],
        "stdout" => {
            for _ in 0..10_000 {
                println!("hostile plugin writes to stdout");
            }
            vec![entry("value", b"printed")]
        }
        other => return Err(error(format!("unknown behaviour {other:?}"))),
    };
    Ok(Generated { data, state: None })
}

esox_plugin_sdk::generator!(generate);
