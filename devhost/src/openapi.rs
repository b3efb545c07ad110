//! The OpenAPI document of a contract profile other than the default, derived
//! from `reader/openapi.yaml` (which describes the default profile): the paths
//! and placeholders the profile names, its route prefix, its body rule (which
//! system properties a record may hold), its validators (`ETag` and 304,
//! `Last-Modified`), its missing-record answer, and the list operation only when
//! it has a list route. `devhost openapi --contract FILE` prints it;
//! devhost/tests/contract.rs runs Schemathesis against the reader with it.

use serde_json::{Value, json};
use tiering::contract::{BodyRule, Contract};
use tiering::record::SYSTEM_PROPERTIES;

const RECORD: &str = "/customers/{customerId}/billing-records/{recordId}";
const LIST: &str = "/customers/{customerId}/billing-records";

/// The default profile's document, as committed.
pub fn default_document() -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(crate::repo_root().join("reader/openapi.yaml"))?;
    Ok(serde_norway::from_str(&text)?)
}

/// Renames the default's path parameters to the profile's placeholders (and
/// drops the partition-key one when the id is the partition key).
fn rename_parameters(operation: &mut Value, contract: &Contract) {
    let Some(parameters) = operation["parameters"].as_array_mut() else { return };
    let pk = contract.partition_key_param.clone();
    parameters.retain(|p| pk.is_some() || p.get("$ref").is_none());
    for p in parameters.iter_mut() {
        if p.get("$ref").is_some_and(|r| r == "#/components/parameters/customerId")
            && let Some(pk) = pk.as_ref().filter(|pk| *pk != "customerId")
        {
            let description = format!("The partition-key value ({}).", contract.partition_key);
            *p = json!({"name": pk, "in": "path", "required": true, "description": description,
                        "schema": {"$ref": "#/components/schemas/Id"}});
        } else if p["name"] == "recordId" {
            p["name"] = contract.id_param.clone().into();
        }
    }
    if !contract.etag {
        parameters.retain(|p| p["name"] != "If-None-Match");
    }
}

/// The document for `contract`, from the default's.
pub fn for_profile(default: &Value, contract: &Contract) -> Value {
    let mut spec = default.clone();
    let prefix = if contract.prefix.is_empty() { "/".to_owned() } else { format!("/{}", contract.prefix) };
    spec["servers"] = json!([{"url": prefix}]);
    spec["info"]["title"] = "Billing records read API (a contract profile)".into();
    spec["info"]["description"] = format!(
        "Generated from reader/openapi.yaml for a contract profile (partition key {}). The rules stated in the \
         default's prose hold here too.",
        contract.partition_key
    )
    .into();

    let mut record = default["paths"][RECORD]["get"].clone();
    rename_parameters(&mut record, contract);
    let responses = &mut record["responses"];
    if !contract.etag {
        if let Some(r) = responses.as_object_mut() {
            r.remove("304");
        }
        if let Some(h) = responses["200"]["headers"].as_object_mut() {
            h.remove("ETag");
        }
    }
    if !contract.last_modified {
        for status in ["200", "304"] {
            if let Some(h) = responses[status]["headers"].as_object_mut() {
                h.remove("Last-Modified");
            }
        }
    }
    responses["200"]["content"] =
        json!({ &contract.content_type: {"schema": {"$ref": "#/components/schemas/Record"}} });
    let not_found = match contract.not_found.body {
        None => json!({"$ref": "#/components/responses/NotFound"}),
        Some(_) => json!({"description": "The record is in neither tier (the profile's own body).",
                          "content": { &contract.not_found.content_type: {"schema": {}} }}),
    };
    if let Some(r) = responses.as_object_mut() {
        r.remove("404");
        r.insert(contract.not_found.status.to_string(), not_found);
    }
    let mut paths = serde_json::Map::new();
    paths.insert(format!("/{}", contract.record.template()), json!({"get": record}));
    if let Some(list) = &contract.list {
        let mut operation = default["paths"][LIST]["get"].clone();
        rename_parameters(&mut operation, contract);
        if let (Some(links), Some(pk)) =
            (operation["responses"]["200"]["links"].as_object_mut(), &contract.partition_key_param)
        {
            for link in links.values_mut() {
                let Some(parameters) = link["parameters"].as_object_mut() else { continue };
                parameters.remove("customerId");
                parameters.insert(pk.clone(), format!("$request.path.{pk}").into());
                if let Some(id) = parameters.remove("recordId") {
                    parameters.insert(contract.id_param.clone(), id);
                }
            }
        }
        paths.insert(format!("/{}", list.template()), json!({"get": operation}));
    }
    if let Some(bearer) = contract.auth.bearer() {
        // Bearer tokens (docs/auth.md): every operation answers 401 without a
        // valid token, and the profile's refusal to a caller the rule refuses.
        spec["components"]["securitySchemes"] = json!({"bearer": {"type": "http", "scheme": "bearer",
            "bearerFormat": "JWT", "description": format!("Issuers {:?}, audiences {:?}.", bearer.issuers, bearer.audiences)}});
        spec["security"] = json!([{"bearer": []}]);
        let u = &bearer.unauthenticated;
        let unauthorized = json!({"description": "No valid bearer token (the profile's answer).",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
            "content": { &u.content_type: {"schema": {}} }});
        let f = &bearer.forbidden;
        let refused = json!({"description": "The caller may not read this partition (the profile's answer).",
            "content": { &f.content_type: {"schema": {}} }});
        for operation in paths.values_mut().filter_map(|p| p["get"]["responses"].as_object_mut()) {
            operation.insert("401".into(), unauthorized.clone());
            operation.entry(f.status.to_string()).or_insert_with(|| refused.clone());
        }
    }
    spec["paths"] = Value::Object(paths);

    // A record holds its id and partition-key value, and none of what the body leaves out.
    let property = contract.partition_key.property();
    let required: Vec<&str> = if contract.partition_key.is_id() { vec!["id"] } else { vec!["id", property] };
    let record_schema = &mut spec["components"]["schemas"]["Record"];
    record_schema["required"] = json!(required);
    record_schema["properties"] = required.iter().map(|p| ((*p).to_owned(), json!({"type": "string"}))).collect();
    match &contract.body {
        BodyRule::AsStored => {
            if let Some(s) = record_schema.as_object_mut() {
                s.remove("not");
            }
        }
        BodyRule::Omit(omit) => {
            let left_out: Vec<Value> = omit
                .iter()
                .filter(|p| SYSTEM_PROPERTIES.contains(&p.as_str()) || !required.contains(&p.as_str()))
                .map(|p| json!({"required": [p]}))
                .collect();
            record_schema["not"] = json!({"anyOf": left_out});
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_gets_its_own_paths_headers_and_answers() {
        let default = default_document().unwrap();
        let text = std::fs::read_to_string(crate::repo_root().join("contracts/examples/tenant-invoices.toml")).unwrap();
        let spec = for_profile(&default, &Contract::parse(&text).unwrap());
        assert_eq!(spec["servers"][0]["url"], "/");
        let paths: Vec<&String> = spec["paths"].as_object().unwrap().keys().collect();
        assert_eq!(paths, ["/tenants/{tenant}/invoices/{invoice}"], "no list route");
        let get = &spec["paths"]["/tenants/{tenant}/invoices/{invoice}"]["get"];
        let names: Vec<&Value> = get["parameters"].as_array().unwrap().iter().map(|p| &p["name"]).collect();
        assert_eq!(names, ["tenant", "invoice"], "no If-None-Match without an ETag");
        assert!(get["responses"].get("304").is_none() && get["responses"]["200"]["headers"].get("ETag").is_none());
        assert!(get["responses"]["404"]["content"].get("application/problem+json").is_some());
        assert!(get["responses"]["200"]["content"].get("application/json").is_some());
        assert!(spec["components"]["schemas"]["Record"].get("not").is_none(), "served as stored");
        assert_eq!(spec["components"]["schemas"]["Record"]["required"], json!(["id", "tenantId"]));
        // Bearer tokens: a security scheme, and the 401 and the refusal on every operation.
        let text = std::fs::read_to_string(crate::repo_root().join("contracts/examples/entra-billing.toml")).unwrap();
        let spec = for_profile(&default, &Contract::parse(&text).unwrap());
        assert_eq!(spec["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
        for path in [RECORD, LIST] {
            let responses = &spec["paths"][path]["get"]["responses"];
            assert!(responses.get("401").is_some() && responses.get("403").is_some(), "{path}: {responses}");
        }
        // The default profile derives to the committed document's paths.
        let same = for_profile(&default, &Contract::default_profile());
        assert_eq!(same["paths"].as_object().unwrap().len(), 2);
        assert_eq!(same["paths"][RECORD]["get"]["parameters"], default["paths"][RECORD]["get"]["parameters"]);
    }
}
