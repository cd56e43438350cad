//! SigV4 verification by recomputation with `aws-sigv4`: header-signed API calls and presigned
//! `openTunnel` URLs. Errors are the reason given to the client.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use http::HeaderMap;

/// How far a request's `X-Amz-Date` may be from now, as AWS allows.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);
/// The longest presigned URL lifetime SigV4 allows.
const MAX_EXPIRES: u64 = 7 * 24 * 3600;

#[derive(Debug)]
pub struct Verifier {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
}

/// A request whose signature must be checked.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The `Host` header (`127.0.0.1:PORT`).
    pub host: &'a str,
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl Verifier {
    /// Verifies an `Authorization: AWS4-HMAC-SHA256 …` header signature for `service`.
    // Over 60 lines: one check after another in SigV4's order, each with AWS's own message.
    pub fn verify_headers(&self, req: &SignedRequest<'_>, service: &str) -> Result<(), String> {
        let authorization =
            header_str(req.headers, "authorization").ok_or("missing Authorization header")?;
        let fields = authorization
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .ok_or("unsupported signature algorithm")?;
        let mut credential = None;
        let mut signed_headers = None;
        let mut signature = None;
        for field in fields.split(',') {
            match field.trim().split_once('=') {
                Some(("Credential", v)) => credential = Some(v),
                Some(("SignedHeaders", v)) => signed_headers = Some(v),
                Some(("Signature", v)) => signature = Some(v),
                _ => {}
            }
        }
        let (credential, signed_headers, signature) = match (credential, signed_headers, signature)
        {
            (Some(c), Some(h), Some(s)) => (c, h, s),
            _ => {
                return Err(
                    "Authorization header lacks Credential, SignedHeaders or Signature".into(),
                );
            }
        };
        self.check_scope(credential, service)?;
        let date = header_str(req.headers, "x-amz-date").ok_or("missing X-Amz-Date header")?;
        let time = parse_amz_date(date)?;
        check_skew(time)?;

        let mut headers = Vec::new();
        for name in signed_headers.split(';') {
            let values = req.headers.get_all(name);
            let mut any = false;
            for value in values {
                let value = value
                    .to_str()
                    .map_err(|_| format!("signed header {name} is not ASCII"))?;
                headers.push((name, value));
                any = true;
            }
            if !any {
                return Err(format!("signed header {name} is missing"));
            }
        }
        let mut settings = SigningSettings::default();
        // Exactly the headers the client declared are signed; exclude nothing.
        settings.excluded_headers = None;
        let expected = self.signature(
            req,
            headers,
            SignableBody::Bytes(req.body),
            service,
            time,
            settings,
            req.query,
        )?;
        if expected == signature {
            Ok(())
        } else {
            Err(
                "The request signature we calculated does not match the signature you provided"
                    .into(),
            )
        }
    }

    /// Verifies a presigned URL (`X-Amz-*` query parameters) for `service`, signed on `host` only.
    // Over 60 lines: one check after another in SigV4's order, each with AWS's own message.
    pub fn verify_presigned(&self, req: &SignedRequest<'_>, service: &str) -> Result<(), String> {
        let mut kept = Vec::new();
        let (
            mut algorithm,
            mut credential,
            mut date,
            mut expires,
            mut signed_headers,
            mut signature,
        ) = (None, None, None, None, None, None);
        let mut token = false;
        for segment in req.query.split('&').filter(|s| !s.is_empty()) {
            let Some((name, value)) = form_urlencoded::parse(segment.as_bytes()).next() else {
                continue;
            };
            match name.as_ref() {
                "X-Amz-Algorithm" => algorithm = Some(value.into_owned()),
                "X-Amz-Credential" => credential = Some(value.into_owned()),
                "X-Amz-Date" => date = Some(value.into_owned()),
                "X-Amz-Expires" => expires = Some(value.into_owned()),
                "X-Amz-SignedHeaders" => signed_headers = Some(value.into_owned()),
                "X-Amz-Signature" => signature = Some(value.into_owned()),
                "X-Amz-Security-Token" => token = true,
                _ => kept.push(segment),
            }
        }
        let missing = |name: &str| format!("missing query parameter {name}");
        let algorithm = algorithm.ok_or_else(|| missing("X-Amz-Algorithm"))?;
        let credential = credential.ok_or_else(|| missing("X-Amz-Credential"))?;
        let date = date.ok_or_else(|| missing("X-Amz-Date"))?;
        let expires = expires.ok_or_else(|| missing("X-Amz-Expires"))?;
        let signed_headers = signed_headers.ok_or_else(|| missing("X-Amz-SignedHeaders"))?;
        let signature = signature.ok_or_else(|| missing("X-Amz-Signature"))?;
        if algorithm != "AWS4-HMAC-SHA256" {
            return Err("unsupported X-Amz-Algorithm".into());
        }
        if signed_headers != "host" {
            return Err("X-Amz-SignedHeaders must be host".into());
        }
        if token {
            return Err("The security token included in the request is invalid".into());
        }
        self.check_scope(&credential, service)?;
        let time = parse_amz_date(&date)?;
        let expires: u64 = expires
            .parse()
            .ok()
            .filter(|s| (1..=MAX_EXPIRES).contains(s))
            .ok_or("X-Amz-Expires must be 1..=604800 seconds")?;
        let now = SystemTime::now();
        if time > now + Duration::from_secs(300) {
            return Err("X-Amz-Date is in the future".into());
        }
        if now > time + Duration::from_secs(expires) {
            return Err("Request has expired".into());
        }

        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(expires));
        let query = kept.join("&");
        let headers = vec![("host", req.host)];
        let expected = self.signature(
            req,
            headers,
            SignableBody::Bytes(&[]),
            service,
            time,
            settings,
            &query,
        )?;
        if expected == signature {
            Ok(())
        } else {
            Err(
                "The request signature we calculated does not match the signature you provided"
                    .into(),
            )
        }
    }

    fn check_scope(&self, credential: &str, service: &str) -> Result<(), String> {
        let parts: Vec<&str> = credential.split('/').collect();
        let [access_key_id, _date, region, scope_service, "aws4_request"] = parts[..] else {
            return Err("malformed credential scope".into());
        };
        if access_key_id != self.access_key_id {
            return Err("The security token included in the request is invalid".into());
        }
        if region != self.region {
            return Err(format!(
                "Credential should be scoped to a valid region: {region} is not {}",
                self.region
            ));
        }
        if scope_service != service {
            return Err(format!(
                "Credential should be scoped to correct service: '{service}'"
            ));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn signature(
        &self,
        req: &SignedRequest<'_>,
        headers: Vec<(&str, &str)>,
        body: SignableBody<'_>,
        service: &str,
        time: SystemTime,
        settings: SigningSettings,
        query: &str,
    ) -> Result<String, String> {
        let uri = if query.is_empty() {
            format!("http://{}{}", req.host, req.path)
        } else {
            format!("http://{}{}?{query}", req.host, req.path)
        };
        let identity = Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            None,
            None,
            "eic-sim",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(service)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| format!("cannot verify the signature: {e}"))?
            .into();
        let request = SignableRequest::new(req.method, uri, headers.into_iter(), body)
            .map_err(|e| format!("cannot verify the signature: {e}"))?;
        let (_, signature) = sign(request, &params)
            .map_err(|e| format!("cannot verify the signature: {e}"))?
            .into_parts();
        Ok(signature)
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn parse_amz_date(date: &str) -> Result<SystemTime, String> {
    chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
        .map(|t| t.and_utc().into())
        .map_err(|_| format!("malformed X-Amz-Date {date:?}"))
}

fn check_skew(time: SystemTime) -> Result<(), String> {
    let now = SystemTime::now();
    let skew = now.duration_since(time).unwrap_or_else(|e| e.duration());
    if skew > MAX_CLOCK_SKEW {
        Err("Signature expired: X-Amz-Date is more than 15 minutes from the server time".into())
    } else {
        Ok(())
    }
}
