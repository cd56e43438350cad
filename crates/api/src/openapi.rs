//! `GET /openapi.json`: the OpenAPI document of every route, built by walking the route table.
//!
//! Each row of `routes.rs` brings its handler's `#[utoipa::path]` operation (and the schemas it
//! references: the handlers' own request and answer types); the row's [`Access`] decides whether
//! the operation requires the bearer. Tests here check that the document covers exactly the
//! table and that every operation documents its errors; `scripts/schemathesis` checks every
//! answer of the running server against it.

use axum::Json;
use serde_json::Value;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder};

use crate::routes::{Access, routes};

/// The name of the bearer scheme the guarded routes require.
const BEARER: &str = "bearer";

/// The document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| serde_json::to_value(build()).unwrap_or_default())
}

/// Every row's operation, with the bearer requirement on the non-public ones.
fn build() -> OpenApi {
    let info = InfoBuilder::new()
        .title("workspace-server")
        .description(Some("Workspace metadata, files and agents' registry"))
        .version(env!("CARGO_PKG_VERSION"))
        .build();
    let mut doc = OpenApiBuilder::new().info(info).build();
    for route in routes() {
        let mut part = (route.doc)();
        if route.spec.access != Access::Public {
            for item in part.paths.paths.values_mut() {
                for operation in operations_mut(item) {
                    operation.security =
                        Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
                }
            }
        }
        doc.merge(part);
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    doc
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The operations of a path item with their (lowercase) methods.
#[cfg(test)]
fn operations_of(item: &PathItem) -> Vec<(&'static str, &Operation)> {
    [
        ("get", &item.get),
        ("put", &item.put),
        ("post", &item.post),
        ("delete", &item.delete),
        ("patch", &item.patch),
        ("head", &item.head),
        ("options", &item.options),
        ("trace", &item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_ref().map(|op| (method, op)))
    .collect()
}

/// `GET /openapi.json`
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "This document", body = Object)))]
pub async fn serve() -> Json<Value> {
    Json(document().clone())
}

/// The table's path in OpenAPI's template syntax: `{*path}` is `{path}`.
pub fn openapi_path(route_path: &str) -> String {
    route_path.replace("{*", "{")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_of_the_table_is_documented_and_nothing_else() {
        let doc = document();
        let mut documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .filter(|key| !matches!(key.as_str(), "parameters" | "summary" | "description"))
                    .map(move |method| (method.to_uppercase(), path.clone()))
            })
            .collect();
        let mut routed: Vec<(String, String)> = crate::routes::table()
            .into_iter()
            .map(|spec| (spec.method.to_string(), openapi_path(spec.path)))
            .collect();
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed);
    }

    #[test]
    fn the_documented_activity_types_are_the_accepted_ones() {
        let documented = &document()["components"]["schemas"]["ActivityType"]["enum"];
        assert_eq!(
            documented,
            &serde_json::json!(crate::agents::activity::ACTIVITY_TYPES)
        );
    }

    #[test]
    fn each_row_documents_its_own_method_and_path_and_security() {
        for route in crate::routes::routes() {
            let part = (route.doc)();
            let path = openapi_path(route.spec.path);
            let item = part.paths.paths.get(&path);
            let operations = item.map(operations_of).unwrap_or_default();
            let method = route.spec.method.as_str().to_lowercase();
            assert_eq!(
                operations.iter().map(|(m, _)| *m).collect::<Vec<_>>(),
                vec![method.as_str()],
                "{} {}: the handler documents another operation",
                route.spec.method,
                route.spec.path
            );
        }
        let doc = document();
        for spec in crate::routes::table() {
            let operation =
                &doc["paths"][openapi_path(spec.path)][spec.method.as_str().to_lowercase()];
            let secured = operation.get("security").is_some();
            assert_eq!(
                secured,
                spec.access != Access::Public,
                "{} {}",
                spec.method,
                spec.path
            );
        }
    }

    #[test]
    fn every_operation_documents_its_error_answers() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                assert!(!responses.is_empty(), "{method} {path}");
                if path.contains("{id}") {
                    assert!(responses.contains_key("400"), "{method} {path}: no 400");
                }
            }
        }
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    }
}
