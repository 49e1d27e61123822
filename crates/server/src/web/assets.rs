//! Static assets, built into the binary and served under content-hashed names
//! (`/static/app.<hash>.css`) with a one-year immutable cache lifetime: a changed file gets a new
//! name, so browsers never keep a stale copy and never re-ask for a current one.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::http::AppError;

struct Asset {
    /// Hashed public name, e.g. `app.3f2a…css`.
    name: String,
    content_type: &'static str,
    body: &'static [u8],
}

const SOURCES: &[(&str, &str, &str, &[u8])] = &[
    (
        "app",
        "css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/app.css"),
    ),
    (
        "app",
        "js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/app.js"),
    ),
    (
        "import",
        "js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/import.js"),
    ),
    (
        "icon",
        "svg",
        "image/svg+xml",
        include_bytes!("../../static/icon.svg"),
    ),
];

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|(stem, ext, content_type, body)| {
            let hash = hex::encode(&Sha256::digest(body)[..8]);
            Asset {
                name: format!("{stem}.{hash}.{ext}"),
                content_type,
                body,
            }
        })
        .collect()
});

/// Public URLs of the assets, for templates.
#[derive(Debug)]
pub struct Assets {
    pub css: String,
    pub icon: String,
    /// The app shell's script (sortable tables, the organization switcher).
    pub app_js: String,
    /// The import wizard's script.
    pub import_js: String,
}

static URLS: LazyLock<Assets> = LazyLock::new(|| {
    let url = |stem: &str, ext: &str| {
        ASSETS
            .iter()
            .find(|a| a.name.starts_with(&format!("{stem}.")) && a.name.ends_with(ext))
            .map(|a| format!("/static/{}", a.name))
            .unwrap_or_default()
    };
    Assets {
        css: url("app", ".css"),
        icon: url("icon", ".svg"),
        app_js: url("app", ".js"),
        import_js: url("import", ".js"),
    }
});

#[must_use]
pub fn get() -> &'static Assets {
    &URLS
}

pub async fn serve(Path(file): Path<String>) -> Result<Response, AppError> {
    let asset = ASSETS
        .iter()
        .find(|a| a.name == file)
        .ok_or(AppError::NotFound)?;
    let mut res = asset.body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(res)
}
