//! The OpenAPI document: poem-openapi's output plus the rewrites ([`super::rewrite`]) that make clients generated
//! from it clean. It is built here once and only here, so the committed file, the served
//! document and the docs page are the same text; each rewrite says which generator it serves.

use std::sync::OnceLock;

use poem::web::Html;
use poem::{EndpointExt, IntoResponse, Route, get, handler};
use serde_yaml::{Mapping, Value};

/// The document, rendered both ways.
pub struct Document {
    pub yaml: String,
    pub json: String,
    /// Its path templates (`/api/v1/hosts/{host_id}`), to name path parameters in errors.
    paths: Vec<String>,
}

/// The document, built on first use.
pub fn document() -> &'static Document {
    static DOCUMENT: OnceLock<Document> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc: Value = serde_yaml::from_str(&crate::api::openapi().spec_yaml())
            .expect("poem-openapi emits YAML");
        super::rewrite::rewrite(&mut doc);
        let paths = doc["paths"]
            .as_mapping()
            .into_iter()
            .flat_map(Mapping::keys)
            .filter_map(|path| path.as_str().map(str::to_owned))
            .collect();
        Document {
            paths,
            yaml: serde_yaml::to_string(&doc).expect("a YAML value serialises"),
            json: serde_json::to_string_pretty(&doc).expect("a YAML value of strings serialises"),
        }
    })
}

/// `/openapi.json`, `/openapi.yaml` and the interactive docs at `/docs`, all from [`document`].
pub fn routes() -> Route {
    #[handler]
    fn json() -> impl IntoResponse {
        document()
            .json
            .clone()
            .with_content_type("application/json")
    }
    #[handler]
    fn yaml() -> impl IntoResponse {
        document()
            .yaml
            .clone()
            .with_content_type("application/x-yaml")
    }
    // poem-openapi's docs page embeds its own document; ours replaces it, byte for byte.
    let service = crate::api::openapi();
    let page = service
        .swagger_ui_html()
        .replace(&service.spec(), &document().json);
    let docs = get(poem::endpoint::make_sync(move |_| Html(page.clone()))).with(
        poem::middleware::SetHeader::new()
            .overriding("X-Content-Type-Options", "nosniff")
            .overriding("X-Frame-Options", "DENY")
            .overriding("Referrer-Policy", "no-referrer"),
    );
    Route::new()
        .at("/openapi.json", get(json))
        .at("/openapi.yaml", get(yaml))
        .at("/docs", docs.map_to_response())
}

/// The document's name for path parameter `param` (poem-openapi's `param0`, `param1`, …) of
/// the route poem matched as `pattern` (`/api/v1/hosts/:param0/tokens/:param1`), so that a 422
/// names it as the document does.
pub fn path_param_name(pattern: &str, param: &str) -> Option<String> {
    let position: usize = param.strip_prefix("param")?.parse().ok()?;
    let shape: Vec<&str> = pattern.split('/').collect();
    let template = document().paths.iter().find(|path| {
        let segments: Vec<&str> = path.split('/').collect();
        segments.len() == shape.len()
            && segments.iter().zip(&shape).all(|(segment, matched)| {
                segment == matched || (segment.starts_with('{') && matched.starts_with(':'))
            })
    })?;
    let name = template
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .nth(position)?;
    Some(name.to_owned())
}
