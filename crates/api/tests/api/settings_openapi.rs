//! The OpenAPI document of the settings, token and external-workspace routes: every schema an
//! operation references is defined, and the typed answers are described field by field.

use serde_json::Value;

fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                found.push(target);
            }
            map.values().for_each(|v| refs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

#[test]
fn every_referenced_schema_is_defined() {
    let doc = api::openapi::document();
    let mut found = Vec::new();
    refs(doc, &mut found);
    let schemas = &doc["components"]["schemas"];
    let missing: Vec<&str> = found
        .into_iter()
        .filter(|r| {
            let name = r.trim_start_matches("#/components/schemas/");
            schemas.get(name).is_none()
        })
        .collect();
    assert!(missing.is_empty(), "undefined schemas: {missing:?}");
}

#[test]
fn the_settings_answers_are_typed() {
    let schemas = &api::openapi::document()["components"]["schemas"];
    for (schema, field) in [
        ("SecretEntry", "scope"),
        ("SecretDone", "status"),
        ("DecryptFailure", "failed_keys"),
        ("Dependents", "dependents"),
        ("TokenList", "tokens"),
        ("MintedToken", "auth_token"),
        ("OrgTokenList", "tokens"),
        ("MintedOrgToken", "warning"),
        ("ConnectionInfo", "curl_register_template"),
        ("ConnectionEnvelope", "connection"),
        ("ConfigView", "data"),
    ] {
        assert!(
            schemas[schema]["properties"].get(field).is_some(),
            "{schema}.{field} is not documented"
        );
    }
}
