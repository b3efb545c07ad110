//! The archiver binary's start-up, without any store: bad settings stop it at
//! once, with a message that names the setting.

#![allow(clippy::unwrap_used)]

#[test]
fn bad_settings_stop_start_up_with_the_settings_name() {
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[("ARCHIVE_BLOB_ENDPOINT", "http://127.0.0.1:1/x")], "COSMOS_ENDPOINT"),
        (
            &[
                ("COSMOS_ENDPOINT", "http://127.0.0.1:1/"),
                ("ARCHIVE_BLOB_ENDPOINT", "http://127.0.0.1:1/x"),
                ("ARCHIVE_AFTER_DAYS", "ninety"),
            ],
            "ARCHIVE_AFTER_DAYS",
        ),
        (
            &[
                ("COSMOS_ENDPOINT", "http://127.0.0.1:1/"),
                ("ARCHIVE_BLOB_ENDPOINT", "http://127.0.0.1:1/x"),
                ("ARCHIVE_CONCURRENCY", "0"),
            ],
            "ARCHIVE_CONCURRENCY",
        ),
    ];
    for (env, name) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_archiver"))
            .arg("run")
            .env_clear()
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
}
