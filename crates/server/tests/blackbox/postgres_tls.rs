//! `sslmode=verify-full` against a PostgreSQL whose certificate a private CA signed: accepted
//! with that CA as `sslrootcert`, refused without it (the system roots do not know it) and for a
//! host name the certificate does not name.

use std::path::Path;
use std::process::Command;

use crate::harness::run_command;

fn run(program: &str, args: &[&str], dir: &Path) {
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// As the `postgres` user when root (PostgreSQL refuses to run as root).
fn as_postgres(program: &Path, args: &[&str], dir: &Path) {
    let program = program.to_str().unwrap();
    let mut all = vec!["-u", "postgres", "--", program];
    all.extend_from_slice(args);
    run("runuser", &all, dir);
}

/// A private CA and a server certificate for `localhost`, signed by it.
fn certificates(dir: &Path) {
    let subject = |cn: &str| format!("/CN={cn}");
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            &subject("test-ca"),
        ],
        dir,
    );
    run(
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            &subject("localhost"),
        ],
        dir,
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost\n").unwrap();
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
        dir,
    );
    run("chown", &["-R", "postgres:", "."], dir);
    run("chmod", &["600", "server.key"], dir);
}

#[test]
fn verify_full_accepts_the_mounted_ca_and_refuses_what_it_does_not_vouch_for() {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries in /usr/lib/postgresql")
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .max()
        .unwrap();
    let temp = tempfile::Builder::new()
        .prefix("wss-tls-")
        .tempdir()
        .unwrap();
    let dir = temp.path();
    run("chmod", &["755", "."], dir);
    certificates(dir);
    as_postgres(
        &bin.join("initdb"),
        &["-D", "pg", "-A", "trust", "-U", "postgres"],
        dir,
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let options = format!(
        "-p {port} -k {dir} -c ssl=on -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key -c listen_addresses=localhost",
        dir = dir.display()
    );
    as_postgres(
        &bin.join("pg_ctl"),
        &["-D", "pg", "-o", &options, "-l", "pg.log", "-w", "start"],
        dir,
    );
    let ca = dir.join("ca.crt").display().to_string();
    let url = |host: &str, extra: &str| {
        format!("postgres://postgres@{host}:{port}/postgres?sslmode=verify-full{extra}")
    };

    let (ok, output) = run_command(
        &[(
            "DATABASE_URL",
            &url("localhost", &format!("&sslrootcert={ca}")),
        )],
        &["migrate"],
    )
    .unwrap();
    let (no_ca, no_ca_output) =
        run_command(&[("DATABASE_URL", &url("localhost", ""))], &["migrate"]).unwrap();
    let (wrong_name, wrong_output) = run_command(
        &[(
            "DATABASE_URL",
            &url("127.0.0.1", &format!("&sslrootcert={ca}")),
        )],
        &["migrate"],
    )
    .unwrap();
    as_postgres(&bin.join("pg_ctl"), &["-D", "pg", "-w", "stop"], dir);

    assert!(ok.success(), "with the CA: {output}");
    assert!(
        !no_ca.success() && no_ca_output.contains("UnknownIssuer"),
        "{no_ca_output}"
    );
    assert!(
        !wrong_name.success() && wrong_output.contains("not valid for name"),
        "{wrong_output}"
    );
}
