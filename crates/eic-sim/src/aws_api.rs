//! `POST /`: the `ec2-instance-connect` JSON API (told apart by `X-Amz-Target`) and the EC2 Query
//! API's `DescribeInstances` / `DescribeInstanceConnectEndpoints`, both SigV4-verified.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::sigv4::SignedRequest;
use crate::state::Sim;

const SEND_SSH_PUBLIC_KEY: &str = "AWSEC2InstanceConnectService.SendSSHPublicKey";
const EC2_NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";
const ACCOUNT_ID: &str = "123456789012";

pub async fn handle(
    State(sim): State<Arc<Sim>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or(&sim.endpoint_dns);
    let request = SignedRequest {
        method: "POST",
        host,
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &headers,
        body: &body,
    };
    match headers
        .get("x-amz-target")
        .map(|t| t.to_str().unwrap_or(""))
    {
        Some(target) => {
            if let Err(reason) = sim
                .verifier
                .verify_headers(&request, "ec2-instance-connect")
            {
                return json_error(StatusCode::FORBIDDEN, "InvalidSignatureException", &reason);
            }
            if target != SEND_SSH_PUBLIC_KEY {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "UnknownOperationException",
                    &format!("unknown operation {target}"),
                );
            }
            send_ssh_public_key(&sim, &body).await
        }
        None => {
            if let Err(reason) = sim.verifier.verify_headers(&request, "ec2") {
                return ec2_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch", &reason);
            }
            ec2_query(&sim, &body).await
        }
    }
}

// ---- ec2-instance-connect (awsJson1.1) ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendSshPublicKeyRequest {
    instance_id: Option<String>,
    #[serde(rename = "InstanceOSUser")]
    instance_os_user: Option<String>,
    #[serde(rename = "SSHPublicKey")]
    ssh_public_key: Option<String>,
    availability_zone: Option<String>,
}

async fn send_ssh_public_key(sim: &Sim, body: &[u8]) -> Response {
    let request: SendSshPublicKeyRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                &e.to_string(),
            );
        }
    };
    let (instance_id, os_user, public_key) = match validate(&request) {
        Ok(v) => v,
        Err(message) => {
            return json_error(StatusCode::BAD_REQUEST, "InvalidArgsException", &message);
        }
    };
    if !sim.instances.contains_key(instance_id) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "EC2InstanceNotFoundException",
            "Instance not found",
        );
    }
    let delay = sim.faults().key_push_delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    // Usable only once answered, as on AWS, so a login that does not wait for the push fails.
    sim.push_key(instance_id, os_user, public_key);
    tracing::debug!(instance_id, os_user, "key pushed");
    let body = serde_json::json!({"RequestId": uuid::Uuid::new_v4().to_string(), "Success": true});
    (
        [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
        body.to_string(),
    )
        .into_response()
}

/// Field checks of the API model (service-2.json of `ec2-instance-connect`).
fn validate(request: &SendSshPublicKeyRequest) -> Result<(&str, &str, &str), String> {
    fn required<'a>(field: &'a Option<String>, name: &str) -> Result<&'a str, String> {
        field
            .as_deref()
            .ok_or_else(|| format!("{name} is a required parameter"))
    }
    let instance_id = required(&request.instance_id, "InstanceId")?;
    let os_user = required(&request.instance_os_user, "InstanceOSUser")?;
    let public_key = required(&request.ssh_public_key, "SSHPublicKey")?;
    if !is_instance_id(instance_id) {
        return Err(format!(
            "InstanceId {instance_id:?} must match ^i-[a-f0-9]+$, 10-32 characters"
        ));
    }
    let valid_user = (1..=32).contains(&os_user.len())
        && os_user
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && os_user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '_' | '-' | '$'));
    if !valid_user {
        return Err("InstanceOSUser is not a valid user name".into());
    }
    if !(80..=4096).contains(&public_key.len()) {
        return Err("SSHPublicKey must be 80-4096 characters".into());
    }
    // One `type base64 [comment]` line: no options (`command=…`), no second line.
    let mut fields = public_key.split_ascii_whitespace();
    let key_type = fields.next().unwrap_or("");
    let supported = matches!(
        key_type,
        "ssh-ed25519"
            | "ssh-rsa"
            | "ecdsa-sha2-nistp256"
            | "ecdsa-sha2-nistp384"
            | "ecdsa-sha2-nistp521"
    );
    let blob_ok = fields.next().is_some_and(|b| {
        b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='))
    });
    if !supported || !blob_ok || public_key.contains(['\n', '\r']) {
        return Err("SSHPublicKey is not a supported OpenSSH public key".into());
    }
    if let Some(zone) = &request.availability_zone
        && !(6..=32).contains(&zone.len())
    {
        return Err("AvailabilityZone must be 6-32 characters".into());
    }
    Ok((instance_id, os_user, public_key))
}

pub fn is_instance_id(id: &str) -> bool {
    (10..=32).contains(&id.len())
        && id
            .strip_prefix("i-")
            .is_some_and(|hex| hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
}

fn json_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({"__type": kind, "message": message});
    (
        status,
        [
            (header::CONTENT_TYPE, "application/x-amz-json-1.1"),
            (header::HeaderName::from_static("x-amzn-errortype"), kind),
        ],
        body.to_string(),
    )
        .into_response()
}

// ---- EC2 Query API (XML) ----

/// `Name=…&Filter.1.Name=…&Filter.1.Value.1=…` as pairs.
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The values of `Prefix.1`, `Prefix.2`, … (any order).
    fn list(&self, prefix: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix(prefix)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `Filter.N.Name` → values of `Filter.N.Value.M`.
    fn filters(&self) -> Vec<(&str, Vec<&str>)> {
        let mut filters = Vec::new();
        for (key, name) in &self.0 {
            let Some(n) = key
                .strip_prefix("Filter.")
                .and_then(|r| r.strip_suffix(".Name"))
            else {
                continue;
            };
            filters.push((name.as_str(), self.list(&format!("Filter.{n}.Value"))));
        }
        filters
    }
}

async fn ec2_query(sim: &Sim, body: &[u8]) -> Response {
    let form = Form(
        form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    );
    let action = form.get("Action");
    let delay = sim.faults().describe_delay_ms;
    if delay > 0
        && matches!(
            action,
            Some("DescribeInstances" | "DescribeInstanceConnectEndpoints")
        )
    {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    match action {
        Some("DescribeInstances") => {
            sim.count_describe();
            describe_instances(sim, &form)
        }
        Some("DescribeInstanceConnectEndpoints") => {
            sim.count_describe();
            describe_endpoints(sim, &form)
        }
        Some(action) => ec2_error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            &format!("The action {action} is not valid for this web service."),
        ),
        None => ec2_error(
            StatusCode::BAD_REQUEST,
            "MissingAction",
            "The request must contain the parameter Action",
        ),
    }
}

fn describe_instances(sim: &Sim, form: &Form) -> Response {
    let ids = form.list("InstanceId");
    for id in &ids {
        if !is_instance_id(id) {
            return ec2_error(
                StatusCode::BAD_REQUEST,
                "InvalidInstanceID.Malformed",
                &format!("Invalid id: \"{id}\""),
            );
        }
        if !sim.instances.contains_key(*id) {
            return ec2_error(
                StatusCode::BAD_REQUEST,
                "InvalidInstanceID.NotFound",
                &format!("The instance ID '{id}' does not exist"),
            );
        }
    }
    let zone = format!("{}a", sim.region);
    let mut reservations = String::new();
    for (n, instance) in sim.instances.values().enumerate() {
        if !ids.is_empty() && !ids.contains(&instance.id.as_str()) {
            continue;
        }
        let ip_label = instance.private_ip.replace('.', "-");
        reservations.push_str(&format!(
            "<item><reservationId>r-0sim{n:012x}</reservationId><ownerId>{ACCOUNT_ID}</ownerId><groupSet/>\
             <instancesSet><item><instanceId>{id}</instanceId><imageId>ami-0sim</imageId>\
             <instanceState><code>16</code><name>running</name></instanceState>\
             <privateDnsName>ip-{ip_label}.ec2.internal</privateDnsName><instanceType>t3.micro</instanceType>\
             <placement><availabilityZone>{zone}</availabilityZone><tenancy>default</tenancy></placement>\
             <subnetId>{subnet}</subnetId><vpcId>{vpc}</vpcId><privateIpAddress>{ip}</privateIpAddress>\
             </item></instancesSet></item>",
            id = xml_escape(&instance.id),
            ip = xml_escape(&instance.private_ip),
            subnet = eic_sim::SUBNET_ID,
            vpc = eic_sim::VPC_ID,
        ));
    }
    xml_ok(&format!(
        "<DescribeInstancesResponse xmlns=\"{EC2_NAMESPACE}\"><requestId>{}</requestId>\
         <reservationSet>{reservations}</reservationSet></DescribeInstancesResponse>",
        uuid::Uuid::new_v4()
    ))
}

fn describe_endpoints(sim: &Sim, form: &Form) -> Response {
    let ids = form.list("InstanceConnectEndpointId");
    if let Some(unknown) = ids.iter().find(|id| **id != eic_sim::ENDPOINT_ID) {
        return ec2_error(
            StatusCode::BAD_REQUEST,
            "InvalidInstanceConnectEndpointId.NotFound",
            &format!("The instance connect endpoint ID '{unknown}' does not exist"),
        );
    }
    // `NextToken` names the page (`page-N`, from 1); the endpoint is on the last one.
    let pages = sim.faults().endpoint_pages.max(1);
    let page = match form.get("NextToken") {
        None => 1,
        Some(token) => match token
            .strip_prefix("page-")
            .and_then(|n| n.parse::<u32>().ok())
        {
            Some(n) if (2..=pages).contains(&n) => n,
            _ => {
                return ec2_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidNextToken",
                    &format!("The token '{token}' is invalid"),
                );
            }
        },
    };
    let next_token = if page < pages {
        format!("<nextToken>page-{}</nextToken>", page + 1)
    } else {
        String::new()
    };
    let state = "create-complete";
    let matches = page == pages
        && form.filters().iter().all(|(name, values)| match *name {
            "vpc-id" => values.contains(&eic_sim::VPC_ID),
            "subnet-id" => values.contains(&eic_sim::SUBNET_ID),
            "state" => values.contains(&state),
            "instance-connect-endpoint-id" => values.contains(&eic_sim::ENDPOINT_ID),
            _ => true,
        });
    let item = if matches {
        format!(
            "<item><ownerId>{ACCOUNT_ID}</ownerId><instanceConnectEndpointId>{id}</instanceConnectEndpointId>\
             <instanceConnectEndpointArn>arn:aws:ec2:{region}:{ACCOUNT_ID}:instance-connect-endpoint/{id}</instanceConnectEndpointArn>\
             <state>{state}</state><stateMessage/><dnsName>{dns}</dnsName>\
             <networkInterfaceIdSet><item>eni-0sim</item></networkInterfaceIdSet>\
             <vpcId>{vpc}</vpcId><availabilityZone>{region}a</availabilityZone>\
             <createdAt>2026-01-01T00:00:00.000Z</createdAt><subnetId>{subnet}</subnetId>\
             <preserveClientIp>false</preserveClientIp>\
             <securityGroupIdSet><item>sg-0sim</item></securityGroupIdSet></item>",
            id = eic_sim::ENDPOINT_ID,
            region = xml_escape(&sim.region),
            dns = xml_escape(&sim.endpoint_dns),
            vpc = eic_sim::VPC_ID,
            subnet = eic_sim::SUBNET_ID,
        )
    } else {
        String::new()
    };
    xml_ok(&format!(
        "<DescribeInstanceConnectEndpointsResponse xmlns=\"{EC2_NAMESPACE}\"><requestId>{}</requestId>\
         <instanceConnectEndpointSet>{item}</instanceConnectEndpointSet>{next_token}</DescribeInstanceConnectEndpointsResponse>",
        uuid::Uuid::new_v4()
    ))
}

fn xml_ok(body: &str) -> Response {
    (
        [(header::CONTENT_TYPE, "text/xml;charset=UTF-8")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"),
    )
        .into_response()
}

fn ec2_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
         <Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
        xml_escape(message),
        uuid::Uuid::new_v4()
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/xml;charset=UTF-8")],
        body,
    )
        .into_response()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}
