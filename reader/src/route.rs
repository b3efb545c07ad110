//! What a request's path says, checked before anything is asked or forwarded:
//! the route's values (docs/read-api.md, "Ids").

use std::collections::HashMap;

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use tiering::record::validate_id;

use crate::error::ApiError;

/// The route's values by placeholder, percent-decoded and checked against the
/// id rules (docs/read-api.md, "Ids") before any store is touched.
pub fn route_values(
    path: Result<Path<Vec<(String, String)>>, PathRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    let Path(params) = path.map_err(|e| ApiError::BadRequest(format!("malformed path: {}", e.body_text())))?;
    params
        .into_iter()
        .map(|(name, value)| match validate_id(&name, &value) {
            Ok(()) => Ok((name, value)),
            Err(e) => Err(ApiError::BadRequest(e.to_string())),
        })
        .collect()
}
