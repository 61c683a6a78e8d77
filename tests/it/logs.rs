//! Logs: one JSON object per line when not on a terminal, a request id on every request line, and no
//! secret (client secret, token, code, password, query string) anywhere in them.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{Backend, ServeProcess, TestDb, cli_json, free_port, run_cli};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_with_request_ids_and_never_contain_secrets() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let port = free_port();
    let mut env = db.env();
    env.insert(
        "LATCHKEY_PUBLIC_URL".into(),
        format!("http://127.0.0.1:{port}"),
    );
    env.insert("LATCHKEY_LOG_LEVEL".into(), "debug".into());
    cli_json(
        &["org", "create", "--slug", "logs", "--name", "Logs"],
        &env,
        None,
    );
    let app = cli_json(
        &[
            "app",
            "create",
            "--org",
            "logs",
            "--name",
            "svc",
            "--type",
            "confidential",
            "--grant",
            "client_credentials",
        ],
        &env,
        None,
    );
    let password = "a very secret password 123";
    let (code, _, stderr) = run_cli(
        &[
            "user",
            "create",
            "--org",
            "logs",
            "--email",
            "log@example.com",
            "--password-stdin",
        ],
        &env,
        Some(&format!("{password}\n")),
    );
    assert_eq!(code, 0, "{stderr}");
    let client_id = app["client_id"].as_str().unwrap();
    let secret = app["client_secret"].as_str().unwrap();

    let mut server = ServeProcess::start(db.data_dir(), port, &env);
    server.wait_ready(Duration::from_secs(10)).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}/o/logs");
    let token: Value = http
        .post(format!("{base}/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access_token = token["access_token"].as_str().unwrap();
    let marker = "QUERYSECRETMARKER";
    let _ = http
        .get(format!(
            "{base}/authorize?client_id={client_id}&state={marker}"
        ))
        .send()
        .await
        .unwrap();
    let _ = http
        .post(format!("{base}/introspect"))
        .form(&[
            ("token", access_token),
            ("client_id", client_id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    let _ = http
        .post(format!("{base}/login"))
        .form(&[("email", "log@example.com"), ("password", password)])
        .send()
        .await
        .unwrap();
    crate::helpers::send_signal(server.pid(), "TERM");
    let _ = crate::helpers::wait_with_timeout(&mut server.child, Duration::from_secs(10));

    let log = server.log_text();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let served: Vec<&Value> = lines.iter().filter(|l| l["message"] == "served").collect();
    assert!(served.len() >= 4, "one line per request: {log}");
    let mut ids = std::collections::HashSet::new();
    for line in &served {
        let id = line["span"]["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no request id: {line}"));
        assert!(ids.insert(id.to_string()), "request ids are unique");
    }
    for secret_text in [secret, access_token, password, marker] {
        assert!(
            !log.contains(secret_text),
            "the log must not contain {secret_text:?}:\n{log}"
        );
    }
}
