//! Several `latchkey` processes at once on the same database: the single-writer SQLite setup must
//! serialize them, and the audit chain must stay one unbroken line.

use std::collections::BTreeMap;

use crate::helpers::{Backend, TestDb, cli_json, run_cli, run_cli_in};

/// Runs `n` copies of a CLI command at once (one thread each); returns their (code, stdout, stderr).
fn run_parallel(
    n: usize,
    make: impl Fn(
        usize,
    ) -> (
        Vec<String>,
        BTreeMap<String, String>,
        Option<std::path::PathBuf>,
    ),
) -> Vec<(i32, String, String)> {
    let jobs: Vec<_> = (0..n).map(&make).collect();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|(args, env, cwd)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                barrier.wait();
                match cwd {
                    Some(dir) => run_cli_in(&dir, &args, &env, None),
                    None => run_cli(&args, &env, None),
                }
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("cli thread"))
        .collect()
}

backend_tests! {
    parallel_cli_processes_writing_one_org_keep_one_audit_chain => sqlite_parallel_cli_processes_writing_one_org_keep_one_audit_chain, postgres_parallel_cli_processes_writing_one_org_keep_one_audit_chain;
}

async fn parallel_cli_processes_writing_one_org_keep_one_audit_chain(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let env = db.env();
    cli_json(
        &["org", "create", "--slug", "busy", "--name", "Busy"],
        &env,
        None,
    );
    const PROCESSES: usize = 6;
    let results = run_parallel(PROCESSES, |i| {
        let email = format!("u{i}@example.com");
        let args = ["user", "create", "--org", "busy", "--email", &email];
        (
            args.into_iter().map(str::to_string).collect(),
            env.clone(),
            None,
        )
    });
    for (code, stdout, stderr) in &results {
        assert_eq!(*code, 0, "stdout={stdout} stderr={stderr}");
    }
    let users = cli_json(&["user", "list", "--org", "busy"], &env, None);
    assert_eq!(users.as_array().unwrap().len(), PROCESSES);
    let events = cli_json(&["audit", "list", "--org", "busy"], &env, None);
    let seqs: Vec<i64> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=PROCESSES as i64 + 1).collect::<Vec<_>>());
    let report = cli_json(&["audit", "verify", "--org", "busy"], &env, None);
    assert_eq!(report["ok"], true, "{report}");
}

#[test]

fn concurrent_first_starts_on_a_fresh_data_dir_all_succeed() {
    for round in 0..30 {
        let cwd = tempfile::tempdir().unwrap();
        let results = run_parallel(4, |_| {
            (
                vec!["migrate".to_string()],
                BTreeMap::new(),
                Some(cwd.path().to_path_buf()),
            )
        });
        for (code, stdout, stderr) in &results {
            assert_eq!(*code, 0, "round {round}: stdout={stdout} stderr={stderr}");
        }
        let (code, _, stderr) = run_cli_in(cwd.path(), &["org", "list"], &BTreeMap::new(), None);
        assert_eq!(code, 0, "every process agreed on one master key: {stderr}");
    }
}
