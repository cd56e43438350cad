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

/// The default of `ARG name=value` in the Dockerfile's instructions.
fn arg_default<'a>(all: &'a [(String, String)], name: &str) -> Option<&'a str> {
    arguments(all, "ARG")
        .into_iter()
        .find_map(|arg| arg.strip_prefix(name)?.strip_prefix('='))
}

/// A tag that names one build: a version (`1.95.0`) or a date (`20251229`), not a moving name
/// (`bookworm-slim`, `nonroot`, `latest`).
fn is_exact_tag(tag: &str) -> bool {
    let has_version = tag
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .any(|part| part.matches('.').count() >= 2 && !part.starts_with('.'));
    let has_date = tag
        .split(|c: char| !c.is_ascii_digit())
        .any(|part| part.len() == 8);
    has_version || has_date
}

/// Releases are reproducible: every base image is pinned by digest or an exact tag, cargo-chef by
/// an exact version, and the toolchain image is the one of `rust-toolchain.toml`, whose version
/// `rust-version` in `Cargo.toml` and the README name too.
#[test]
fn base_images_cargo_chef_and_the_toolchain_are_pinned() {
    let toolchain = repo_file("rust-toolchain.toml");
    let channel = toolchain
        .lines()
        .find_map(|line| line.trim().strip_prefix("channel = "))
        .expect("a channel")
        .trim_matches('"')
        .to_string();
    let manifest = repo_file("Cargo.toml");
    let rust_version = manifest
        .lines()
        .find_map(|line| line.trim().strip_prefix("rust-version = "))
        .expect("rust-version in Cargo.toml")
        .trim_matches('"')
        .to_string();
    assert!(
        channel.starts_with(&rust_version),
        "rust-version {rust_version} and the toolchain {channel} agree"
    );
    assert!(
        repo_file("README.md").contains(&format!("Rust {channel}")),
        "the README names Rust {channel}"
    );
    for name in ["Dockerfile", "Dockerfile.tenant"] {
        let all = instructions(&repo_file(name));
        assert_eq!(
            arg_default(&all, "RUST_VERSION"),
            Some(channel.as_str()),
            "{name}: RUST_VERSION is the toolchain's"
        );
        let mut stages: Vec<String> = Vec::new();
        for from in arguments(&all, "FROM") {
            let words: Vec<&str> = from.split_whitespace().collect();
            let image = words[0].replace("${RUST_VERSION}", &channel);
            if let [.., as_keyword, stage] = words.as_slice()
                && as_keyword.eq_ignore_ascii_case("as")
            {
                stages.push(stage.to_string());
            }
            if stages.contains(&image) {
                continue;
            }
            let (reference, digest) = match image.split_once('@') {
                Some((reference, digest)) => (reference, Some(digest)),
                None => (image.as_str(), None),
            };
            if let Some(digest) = digest {
                let hex = digest.strip_prefix("sha256:").unwrap_or_default();
                assert!(
                    hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()),
                    "{name}: {image}: a sha256 digest"
                );
                continue;
            }
            let tag = reference.rsplit_once(':').map_or("", |(_, tag)| tag);
            assert!(
                is_exact_tag(tag),
                "{name}: pin {image} by digest or an exact tag (a version or a date)"
            );
        }
        let version = arg_default(&all, "CARGO_CHEF_VERSION")
            .unwrap_or_else(|| panic!("{name}: ARG CARGO_CHEF_VERSION"));
        assert!(
            version.split('.').count() == 3 && version.split('.').all(|n| n.parse::<u32>().is_ok()),
            "{name}: cargo-chef pinned to an exact version, not {version}"
        );
        let install = arguments(&all, "RUN")
            .into_iter()
            .find(|run| run.contains("cargo install cargo-chef"))
            .unwrap_or_else(|| panic!("{name}: installs cargo-chef"));
        assert!(
            install.contains("--locked")
                && install.contains(r#"--version "=${CARGO_CHEF_VERSION}""#),
            "{name}: `{install}`"
        );
    }
    assert!(is_exact_tag("1.95.0-slim-bookworm") && is_exact_tag("bookworm-20251229-slim"));
    assert!(!is_exact_tag("bookworm-slim") && !is_exact_tag("nonroot") && !is_exact_tag("1.95"));
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
