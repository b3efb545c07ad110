//! Front mode (placeholder while the modules settle).
use crate::app::App;
use axum::Router;
pub fn router(app: App) -> Router {
    crate::serve::router(app)
}
