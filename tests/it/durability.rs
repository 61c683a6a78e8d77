//! Writes acknowledged by the CLI survive the server being killed with SIGKILL and restarted.

use std::time::Duration;

use crate::helpers::{
    Backend, ServeProcess, TestDb, cli_json, free_port, run_cli, send_signal, wait_with_timeout,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_writes_made_while_the_server_runs_survive_kill_9_and_restart() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = db.env();
    let mut server = ServeProcess::start(db.data_dir(), free_port(), &env);
    server.wait_ready(Duration::from_secs(10)).await;

    // The CLI writes the same SQLite database while the server holds it open.
    let org = cli_json(
        &["org", "create", "--slug", "durable", "--name", "Durable"],
        &env,
        None,
    );
    let user = cli_json(
        &[
            "user",
            "create",
            "--org",
            "durable",
            "--email",
            "dora@example.com",
            "--password-stdin",
        ],
        &env,
        Some("a password that lasts\n"),
    );
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "the server stays ready while the CLI writes"
    );

    send_signal(server.pid(), "KILL");
    let status = wait_with_timeout(&mut server.child, Duration::from_secs(5)).expect("killed");
    assert_eq!(
        status.code(),
        None,
        "terminated by a signal, no clean shutdown"
    );
    drop(server);

    let mut restarted = ServeProcess::start(db.data_dir(), free_port(), &env);
    restarted.wait_ready(Duration::from_secs(10)).await;

    let orgs = cli_json(&["org", "list"], &env, None);
    assert_eq!(orgs.as_array().unwrap().len(), 1);
    assert_eq!(orgs[0]["id"], org["id"]);
    let users = cli_json(&["user", "list", "--org", "durable"], &env, None);
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(users[0]["id"], user["id"]);
    assert_eq!(users[0]["email"], "dora@example.com");
    let report = cli_json(&["audit", "verify", "--org", "durable"], &env, None);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["events"], 2);

    // And the restarted server keeps taking writes through the CLI.
    let (code, _, stderr) = run_cli(
        &["org", "create", "--slug", "after", "--name", "After"],
        &env,
        None,
    );
    assert_eq!(code, 0, "{stderr}");
    send_signal(restarted.pid(), "TERM");
    let status = wait_with_timeout(&mut restarted.child, Duration::from_secs(5))
        .expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", restarted.log_text());
}
