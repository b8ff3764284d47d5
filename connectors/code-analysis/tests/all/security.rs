//! FindSecurityIssues: rules per language, no matches in comments or strings,
//! secrets redacted, path scans, filters.

use switchboard_proto::code_analysis::v1 as pb;
use tonic::Code;

use crate::support;

async fn findings(code: &str, file_name: &str) -> Vec<pb::Finding> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut connector = support::start(dir.path()).await;
    let request = pb::FindSecurityIssuesRequest {
        code: Some(code.to_owned()),
        file_name: Some(file_name.to_owned()),
        ..Default::default()
    };
    connector
        .client
        .find_security_issues(request)
        .await
        .expect("ok")
        .into_inner()
        .findings
}

fn rules(found: &[pb::Finding]) -> Vec<(&str, u32)> {
    let mut rules: Vec<_> = found
        .iter()
        .map(|f| (f.rule_id.as_str(), f.start_line))
        .collect();
    rules.sort();
    rules
}

#[tokio::test]
async fn python_rules_find_injection_deserialisation_weak_hashes_and_secrets() {
    let code = r#"import os, pickle, subprocess, yaml, hashlib
# eval(user) in a comment is not a finding
doc = "subprocess.run(cmd, shell=True) in a string is not a finding"
eval(user_input)
eval("1 + 1")
subprocess.run(cmd, shell=True)
os.system("ls " + path)
cursor.execute("SELECT * FROM users WHERE id = " + user_id)
cursor.execute(f"DELETE FROM t WHERE id = {x}")
cursor.execute("SELECT * FROM users WHERE id = %s", (user_id,))
data = pickle.loads(blob)
cfg = yaml.load(text)
safe = yaml.load(text, Loader=yaml.SafeLoader)
digest = hashlib.md5(data)
db_password = "q8Zr!2vLp0#xT7m"
password_field = "password"
aws = "AKIAIOSFODNN7EXAMPLE"
"#;
    let found = findings(code, "app.py").await;
    assert_eq!(
        rules(&found),
        [
            ("python.eval-exec", 4),
            ("python.hardcoded-credential", 15),
            ("python.os-system", 7),
            ("python.secret-key-format", 17),
            ("python.sql-injection", 8),
            ("python.sql-injection", 9),
            ("python.subprocess-shell-true", 6),
            ("python.unsafe-deserialization", 11),
            ("python.weak-hash", 14),
            ("python.yaml-unsafe-load", 12),
        ]
    );
    let secret = found
        .iter()
        .find(|f| f.rule_id == "python.hardcoded-credential")
        .expect("secret");
    assert_eq!(secret.cwe, "CWE-798");
    assert_eq!(secret.snippet, "db_password = \"***\"");
    for f in &found {
        assert!(
            !f.snippet.contains("q8Zr")
                && !f.message.contains("q8Zr")
                && !f.snippet.contains("AKIA"),
            "secret echoed: {f:?}"
        );
    }
    assert!(found.iter().all(|f| f.path == "app.py"));
}

#[tokio::test]
async fn javascript_and_typescript_rules_find_eval_exec_sql_and_weak_crypto() {
    let code = r#"const { exec } = require("child_process");
// eval(x) in a comment
eval(userCode);
const f = new Function("a", body);
exec("git log " + branch);
exec(`ls ${dir}`);
exec("ls -la");
db.query("SELECT * FROM t WHERE id = " + id);
db.query(`SELECT * FROM t WHERE id = ${id}`);
db.query("SELECT * FROM t WHERE id = $1", [id]);
crypto.createHash("md5");
crypto.createHash("sha256");
const apiKey = "Zx81-kP0q!rT5vW3";
"#;
    let expected = [
        ("javascript.command-injection", 5),
        ("javascript.command-injection", 6),
        ("javascript.eval", 3),
        ("javascript.eval", 4),
        ("javascript.hardcoded-credential", 13),
        ("javascript.sql-injection", 8),
        ("javascript.sql-injection", 9),
        ("javascript.weak-hash", 11),
    ];
    assert_eq!(rules(&findings(code, "app.js").await), expected);
    assert_eq!(
        rules(&findings(code, "app.ts").await),
        expected,
        "TypeScript shares the rules"
    );
}

#[tokio::test]
async fn go_and_java_rules_find_command_and_sql_injection() {
    let go = r#"package main

func run(db *sql.DB, name string) {
	exec.Command("sh", "-c", script)
	exec.Command("ls", "-la")
	db.Query("SELECT * FROM users WHERE name = '" + name + "'")
	db.Query(fmt.Sprintf("DELETE FROM t WHERE id = %d", id))
	db.Query("SELECT * FROM users WHERE name = $1", name)
	h := md5.New()
	tls := &tls.Config{InsecureSkipVerify: true}
}
"#;
    assert_eq!(
        rules(&findings(go, "main.go").await),
        [
            ("go.command-injection", 4),
            ("go.insecure-tls", 10),
            ("go.sql-injection", 6),
            ("go.sql-injection", 7),
            ("go.weak-hash", 9)
        ]
    );
    let java = r#"class A {
    void run(Statement st, String id) throws Exception {
        st.executeQuery("SELECT * FROM t WHERE id = " + id);
        st.executeQuery("SELECT 1");
        Runtime.getRuntime().exec("ping " + host);
        MessageDigest.getInstance("MD5");
        Cipher.getInstance("AES/GCM/NoPadding");
        Cipher.getInstance("DES/CBC/PKCS5Padding");
        ObjectInputStream in = new ObjectInputStream(stream);
    }
}
"#;
    assert_eq!(
        rules(&findings(java, "A.java").await),
        [
            ("java.command-injection", 5),
            ("java.sql-injection", 3),
            ("java.unsafe-deserialization", 9),
            ("java.weak-cipher", 8),
            ("java.weak-hash", 6),
        ]
    );
}

#[tokio::test]
async fn c_and_rust_rules_find_dangerous_functions_and_unsafe() {
    let c = "#include <stdio.h>\n/* gets(buf) here is a comment */\nvoid f(char *in) {\n    char buf[16];\n    gets(buf);\n    strcpy(buf, in);\n    snprintf(buf, sizeof buf, \"%s\", in);\n    system(in);\n    system(\"ls\");\n    printf(in);\n}\n";
    let found = findings(c, "f.c").await;
    assert_eq!(
        rules(&found),
        [
            ("c.command-injection", 8),
            ("c.format-string", 10),
            ("c.gets", 5),
            ("c.unbounded-copy", 6)
        ]
    );
    let gets = found.iter().find(|f| f.rule_id == "c.gets").expect("gets");
    assert_eq!(gets.severity, pb::Severity::Critical as i32);
    assert_eq!(gets.cwe, "CWE-242");
    assert_eq!(
        rules(&findings(c, "f.cpp").await).len(),
        4,
        "C++ shares the C rules"
    );

    let rust = "fn f(conn: &Connection, id: &str) {\n    // unsafe { in a comment }\n    let s = \"unsafe { in a string }\";\n    unsafe { libc::getpid() };\n    conn.execute(&format!(\"DELETE FROM t WHERE id = {id}\"), []);\n    conn.execute(\"DELETE FROM t WHERE id = ?1\", [id]);\n    Command::new(\"sh\").arg(\"-c\").arg(script);\n}\nunsafe fn raw() {}\n";
    assert_eq!(
        rules(&findings(rust, "lib.rs").await),
        [
            ("rust.command-shell", 7),
            ("rust.sql-injection", 5),
            ("rust.unsafe-block", 4),
            ("rust.unsafe-fn-or-impl", 9)
        ]
    );
}

#[tokio::test]
async fn a_path_scan_covers_the_tree_and_filters_by_severity() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("src")).expect("mkdir");
    std::fs::write(
        dir.path().join("src/a.py"),
        "import hashlib\nhashlib.sha1(b)\neval(x)\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("src/b.c"),
        "void f(char *s) { char b[4]; gets(b); }\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("src/ok.rs"), "fn ok() {}\n").expect("write");
    let mut connector = support::start(dir.path()).await;
    let request = pb::FindSecurityIssuesRequest {
        path: Some(".".into()),
        ..Default::default()
    };
    let all = connector
        .client
        .find_security_issues(request.clone())
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(all.files_scanned, 3);
    let ordered: Vec<_> = all
        .findings
        .iter()
        .map(|f| (f.path.as_str(), f.rule_id.as_str()))
        .collect();
    assert_eq!(
        ordered,
        [
            ("src/b.c", "c.gets"),
            ("src/a.py", "python.eval-exec"),
            ("src/a.py", "python.weak-hash")
        ],
        "most severe first"
    );

    let high = pb::FindSecurityIssuesRequest {
        min_severity: Some(pb::Severity::High as i32),
        max_findings: Some(1),
        ..request
    };
    let filtered = connector
        .client
        .find_security_issues(high)
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(filtered.findings.len(), 1);
    assert_eq!(filtered.findings[0].rule_id, "c.gets");
    assert!(filtered.truncated);
}

#[tokio::test]
async fn code_and_path_are_mutually_exclusive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut connector = support::start(dir.path()).await;
    let both = pb::FindSecurityIssuesRequest {
        code: Some("x".into()),
        language: Some("python".into()),
        path: Some(".".into()),
        ..Default::default()
    };
    let status = connector
        .client
        .find_security_issues(both)
        .await
        .expect_err("both");
    assert_eq!(status.code(), Code::InvalidArgument);
    let neither = pb::FindSecurityIssuesRequest::default();
    let status = connector
        .client
        .find_security_issues(neither)
        .await
        .expect_err("neither");
    assert_eq!(status.code(), Code::InvalidArgument);
}

/// The connector's own tests quote vulnerable code inside Rust string literals: none
/// of it is code, so only the key-format rule (which looks inside literals) may fire.
#[tokio::test]
async fn vulnerable_code_quoted_in_string_literals_is_not_reported() {
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut connector = support::start(crate_dir).await;
    let request = pb::FindSecurityIssuesRequest {
        path: Some("tests/all".into()),
        ..Default::default()
    };
    let response = connector
        .client
        .find_security_issues(request)
        .await
        .expect("ok")
        .into_inner();
    assert!(response.files_scanned >= 5);
    let rules: Vec<_> = response
        .findings
        .iter()
        .map(|f| (f.path.as_str(), f.rule_id.as_str()))
        .collect();
    assert_eq!(
        rules,
        [("tests/all/security.rs", "rust.secret-key-format")],
        "{rules:?}"
    );
}

#[tokio::test]
async fn a_callee_name_as_long_as_the_file_is_quoted_only_in_part() {
    let name = format!("DES_{}", "k".repeat(200_000));
    let found = findings(&format!("void f(void) {{ {name}(); }}\n"), "long.c").await;
    assert_eq!(rules(&found), [("c.weak-crypto", 1)]);
    let message = &found[0].message;
    assert!(message.len() < 500, "{} bytes", message.len());
    assert!(
        message.starts_with(&format!("DES_{}…: ", "k".repeat(96))),
        "{message}"
    );
}

#[tokio::test]
async fn a_path_scan_keeps_the_first_findings_in_report_order_and_caps_skipped_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gets: String = (0..2000).map(|_| "void f(void) { gets(b); }\n").collect();
    for name in ["a.c", "b.c", "c.c"] {
        std::fs::write(dir.path().join(name), &gets).expect("write");
    }
    let skipped = dir.path().join("skipped");
    std::fs::create_dir(&skipped).expect("mkdir");
    for i in 0..1010 {
        std::fs::write(skipped.join(format!("bin{i}.py")), b"x = 1\0\n").expect("write");
    }
    let mut connector = support::start(dir.path()).await;
    let reply = connector
        .client
        .find_security_issues(pb::FindSecurityIssuesRequest {
            path: Some(".".to_owned()),
            max_findings: Some(5000),
            ..Default::default()
        })
        .await
        .expect("ok")
        .into_inner();
    assert!(reply.truncated);
    assert_eq!(reply.findings.len(), 2000, "max_findings is capped at 2000");
    assert!(reply.findings.iter().all(|f| f.path == "a.c"));
    let lines: Vec<u32> = reply.findings.iter().map(|f| f.start_line).collect();
    assert_eq!(lines, (1..=2000).collect::<Vec<_>>());
    assert_eq!(reply.skipped.len(), 1000);
    assert!(reply.skipped.iter().all(|s| s.reason == "binary file"));
    assert_eq!(reply.files_scanned, 3);
}
