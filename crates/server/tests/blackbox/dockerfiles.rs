//! Static checks of `Dockerfile` and `Dockerfile.tenant` (no Docker engine here to build them):
//! the rules of hadolint that matter for these images, plus this project's own requirements.

use crate::harness::repo_root;

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path))
        .unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// Instructions as (KEYWORD, arguments), with `\` continuations joined and comments dropped.
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(start) => {
                current.push_str(start);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    joined
        .into_iter()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (keyword, arguments) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
            (keyword.to_uppercase(), arguments.trim().to_string())
        })
        .collect()
}

/// The instructions of the last stage (the image that ships).
fn runtime_stage(all: &[(String, String)]) -> &[(String, String)] {
    let start = all
        .iter()
        .rposition(|(keyword, _)| keyword == "FROM")
        .expect("a FROM");
    &all[start..]
}

fn arguments<'a>(stage: &'a [(String, String)], keyword: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|(k, _)| k == keyword)
        .map(|(_, a)| a.as_str())
        .collect()
}

fn check_common(name: &str) -> Vec<(String, String)> {
    let all = instructions(&repo_file(name));

    let mut stages: Vec<String> = Vec::new();
    for from in arguments(&all, "FROM") {
        let words: Vec<&str> = from.split_whitespace().collect();
        let image = words[0];
        if let [.., as_keyword, stage] = words.as_slice()
            && as_keyword.eq_ignore_ascii_case("as")
        {
            stages.push(stage.to_string());
        }
        if stages.iter().any(|stage| stage == image) {
            continue; // an earlier stage, not an image
        }
        let tag = image.rsplit_once(':').map(|(_, tag)| tag);
        assert!(
            tag.is_some_and(|tag| tag != "latest"),
            "{name}: pin a tag for {image} (DL3006/DL3007)"
        );
    }
    let runs = arguments(&all, "RUN").join("\n");
    for build in runs
        .lines()
        .filter(|run| run.contains("cargo build") || run.contains("cargo chef cook"))
    {
        assert!(
            build.contains("--release") && build.contains("--locked"),
            "{name}: --release --locked in `{build}`"
        );
    }
    for install in runs.lines().filter(|run| run.contains("apt-get install")) {
        assert!(
            install.contains("-y") && install.contains("--no-install-recommends"),
            "{name}: DL3015 in `{install}`"
        );
        assert!(
            install.contains("rm -rf /var/lib/apt/lists"),
            "{name}: DL3009 in `{install}`"
        );
    }
    assert!(
        all.iter()
            .any(|(k, a)| k == "ENV" && a.contains("SQLX_OFFLINE=true")),
        "{name}: queries must build from .sqlx/"
    );
    assert!(
        all.iter()
            .any(|(k, a)| k == "ARG" && a.starts_with("GIT_SHA")),
        "{name}: ARG GIT_SHA"
    );
    assert!(
        runs.contains("GIT_SHA=\"${GIT_SHA}\" cargo build"),
        "{name}: GIT_SHA reaches the build"
    );
    for (keyword, text) in all.iter().filter(|(k, _)| k == "ENV" || k == "ARG") {
        for secret in [
            "TOKEN",
            "SECRET",
            "PASSWORD",
            "ENCRYPTION_KEY",
            "DATABASE_URL",
            "AWS_ACCESS",
        ] {
            assert!(
                !text.to_uppercase().contains(secret),
                "{name}: no secret in `{keyword} {text}`"
            );
        }
    }

    let runtime = runtime_stage(&all);
    let user = arguments(runtime, "USER");
    let uid = user
        .last()
        .unwrap_or_else(|| panic!("{name}: the runtime stage sets USER (DL3002)"));
    let uid: u32 = uid
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric uid, checkable by runtimes");
    assert_ne!(uid, 0, "{name}: non-root");
    assert_eq!(arguments(runtime, "EXPOSE"), ["8080"], "{name}");
    assert_eq!(arguments(runtime, "STOPSIGNAL"), ["SIGTERM"], "{name}");
    let healthcheck = arguments(runtime, "HEALTHCHECK").join(" ");
    assert!(
        healthcheck.contains(r#"CMD ["/usr/local/bin/workspace-server", "healthcheck"]"#),
        "{name}: exec-form healthcheck through the binary: {healthcheck}"
    );
    for entrypoint in arguments(runtime, "ENTRYPOINT") {
        assert!(
            entrypoint.starts_with('['),
            "{name}: exec-form ENTRYPOINT so signals reach the server (DL3025)"
        );
    }
    all
}

#[test]
fn the_plain_image_is_minimal_and_non_root() {
    let all = check_common("Dockerfile");
    let runtime = runtime_stage(&all);
    assert!(arguments(runtime, "FROM")[0].starts_with("gcr.io/distroless/cc-debian12:nonroot"));
    assert_eq!(
        arguments(runtime, "ENTRYPOINT"),
        [r#"["/usr/local/bin/workspace-server"]"#]
    );
}

#[test]
fn the_tenant_image_runs_the_entrypoint_without_aws_cli_or_ssh() {
    let all = check_common("Dockerfile.tenant");
    let runtime = runtime_stage(&all);
    assert_eq!(
        arguments(runtime, "ENTRYPOINT"),
        [r#"["/usr/local/bin/entrypoint-tenant.sh"]"#]
    );
    assert!(
        arguments(runtime, "COPY")
            .iter()
            .any(|copy| copy.contains("entrypoint-tenant.sh"))
    );
    let packages = arguments(runtime, "RUN").join(" ");
    for forbidden in ["openssh", "aws-cli", "awscli", "curl"] {
        assert!(
            !packages.contains(forbidden),
            "the tenant image must not install {forbidden}"
        );
    }
}

#[test]
fn the_build_context_keeps_the_query_data_and_drops_the_rest() {
    let ignore = repo_file(".dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    // `**/target`: the fuzz crate's target/ too, not only the workspace's.
    for needed_out in [".git", "**/target", ".env"] {
        assert!(
            patterns.contains(&needed_out),
            ".dockerignore lacks {needed_out}"
        );
    }
    for kept in [
        ".sqlx",
        "migrations",
        "crates",
        "Cargo.lock",
        "entrypoint-tenant.sh",
    ] {
        assert!(
            !patterns.iter().any(|p| p.trim_start_matches("**/") == kept),
            ".dockerignore must keep {kept}"
        );
    }
}
