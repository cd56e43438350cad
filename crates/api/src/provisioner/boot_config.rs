//! The boot-time configuration refresh (`cmd/server/cp_config.go:38-107` at 624ef4d0): the
//! control plane hands the tenant its current settings (shared secret, URLs) as a JSON object.

use std::collections::BTreeMap;
use std::time::Duration;

use super::ProvisionError;
use super::control_plane::read_capped;

/// The refresh's bound.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Body read at most.
const BODY_CAP: usize = 64 * 1024;
/// Longest value applied.
const VALUE_CAP: usize = 4096;

/// `GET {cp_url}/cp/tenants/config` with the admin token and the org id: the non-empty keys
/// whose value is at most 4096 bytes. Anything but a 200 JSON object of strings is an error
/// (the caller logs it and boots on).
pub async fn fetch(
    cp_url: &str,
    org_id: &str,
    admin_token: &str,
) -> Result<BTreeMap<String, String>, ProvisionError> {
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .unwrap_or_default();
    let response = client
        .get(format!("{cp_url}/cp/tenants/config"))
        .bearer_auth(admin_token)
        .header("X-Molecule-Org-Id", org_id)
        .send()
        .await?;
    let status = response.status();
    let body = read_capped(response, BODY_CAP).await?;
    if status != reqwest::StatusCode::OK {
        return Err(ProvisionError::Unexpected {
            call: "tenants/config",
            status: status.as_u16(),
            body: String::new(),
        });
    }
    let values: BTreeMap<String, String> =
        serde_json::from_slice(&body).map_err(|_| ProvisionError::Decode("tenants/config"))?;
    Ok(values
        .into_iter()
        .filter(|(key, value)| !key.is_empty() && value.len() <= VALUE_CAP)
        .collect())
}
