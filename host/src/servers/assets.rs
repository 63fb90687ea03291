//! The browser assets the host embeds: `actionheroClient.js` (the client of the
//! websocket server protocol) and the chat example page, served as-is.

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

/// `/public/javascript/actionheroClient.js` and the chat page, embedded in the binary.
pub fn asset_routes() -> BoxedFilter<(Response,)> {
    let client = warp::path!("public" / "javascript" / "actionheroClient.js")
        .map(|| asset(ACTIONHERO_CLIENT, "application/javascript; charset=utf-8"));
    let chat = warp::path!("chat.html").map(|| asset(CHAT_HTML, "text/html; charset=utf-8"));
    let chat_js = warp::path!("chat" / "chat.js")
        .map(|| asset(CHAT_JS, "application/javascript; charset=utf-8"));
    let chat_css =
        warp::path!("chat" / "chat.css").map(|| asset(CHAT_CSS, "text/css; charset=utf-8"));
    warp::get()
        .and(
            client
                .or(chat)
                .unify()
                .or(chat_js)
                .unify()
                .or(chat_css)
                .unify(),
        )
        .boxed()
}

/// The browser client of this protocol.
pub const ACTIONHERO_CLIENT: &str = include_str!("../assets/actionheroClient.js");
const CHAT_HTML: &str = include_str!("../../../examples/chat/index.html");
const CHAT_JS: &str = include_str!("../../../examples/chat/chat.js");
const CHAT_CSS: &str = include_str!("../../../examples/chat/chat.css");

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = Response::new(body.into());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::header::HeaderValue::from_static(content_type),
    );
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::header::HeaderValue::from_static("no-cache"),
    );
    response
}
