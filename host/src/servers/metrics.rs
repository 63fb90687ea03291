//! `GET /metrics`: the Prometheus scrape endpoint (see [`crate::metrics`]).
//!
//! Off with `metrics = false`; then the path falls through to the static files like any
//! other. Keep it on a network the scraper alone reaches, or behind the balancer's rules.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::app::App;

/// The `/metrics` route, when enabled.
pub fn routes(app: Arc<App>) -> BoxedFilter<(Response,)> {
    let enabled = app.config.metrics;
    warp::path("metrics")
        .and(warp::path::end())
        .and(warp::get())
        .and_then(move || {
            let app = Arc::clone(&app);
            async move {
                if !enabled {
                    return Err(warp::reject::not_found());
                }
                let mut response = Response::new(crate::metrics::render(&app).await.into());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                Ok(response)
            }
        })
        .boxed()
}
