//! Every server-side failure reaches the log once, with its cause: the real binary, its database
//! broken behind its back, answers 500 and logs one `ERROR` line naming the method, the route
//! pattern, the status, a request id and the database's own message; the admin token used for
//! the request is not in the log. Client errors stay out of the log at the default level.
//! (The 502 and 504 of a remote host are checked where eic-sim injects them: `faults.rs`.)

use crate::harness::TestServer;
use reqwest::StatusCode;

const ADMIN: &str = "error-log-admin-token-8c1e4a";

#[tokio::test]
async fn a_500_is_logged_once_at_error_with_its_cause_and_no_token() {
    let mut server = TestServer::builder()
        .env("ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "text")
        .start()
        .await;
    let pool = server.pool().await.expect("a fresh database");
    sqlx::query("DROP TABLE workspaces CASCADE")
        .execute(&pool)
        .await
        .expect("drop the table under the server");

    let response = server
        .client
        .get(server.url("/workspaces"))
        .bearer_auth(ADMIN)
        .header("x-request-id", "edge-request-7")
        .send()
        .await
        .expect("GET /workspaces");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.text().await.unwrap();
    assert!(
        !body.contains("does not exist"),
        "the cause leaked to the client: {body}"
    );
    // A client error on the side: not logged at info.
    let (status, _) = server.get("/workspaces/not-a-uuid/model").await;
    assert!(status.is_client_error(), "{status}");
    server.terminate();

    let lines = server.log_lines("ERROR", 500);
    assert_eq!(lines.len(), 1, "one error line per 500:\n{}", server.logs());
    let line = &lines[0];
    for expected in [
        " ERROR ",
        "method=GET",
        r#"route="/workspaces""#,
        "status=500",
        r#"request_id="edge-request-7""#,
        // The client saw `query failed`; the log has the database's own words.
        r#"cause="query failed: "#,
        r#"relation \"workspaces\" does not exist"#,
    ] {
        assert!(line.contains(expected), "{expected:?} missing from {line}");
    }
    let logs = server.logs();
    assert!(!logs.contains(ADMIN), "the admin token is in the log");
    assert!(
        !logs.contains("status=4"),
        "a client error was logged above debug:\n{logs}"
    );
}
