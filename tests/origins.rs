//! `allowed_origins` through the real binary: with a list, a browser origin outside it
//! is refused with `403` naming it on `/faye` (long-polling, preflight, websocket
//! upgrade) and `/api`, before anything runs; listed and same-host origins, and
//! requests without `Origin`, are served. The default allows any origin, as faye does.

#![allow(clippy::unwrap_used)]

mod support;

use reqwest::StatusCode;
use support::Hero;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const HANDSHAKE: &str = r#"[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]"#;

async fn handshake(
    hero: &Hero,
    origin: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut req = reqwest::Client::new()
        .post(hero.at("/faye"))
        .header("content-type", "application/json")
        .body(HANDSHAKE);
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, res.text().await.unwrap())
}

async fn websocket(hero: &Hero, origin: &str) -> Result<(), String> {
    let mut request = format!("ws://127.0.0.1:{}/faye", hero.port)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(format!(
            "{} {}",
            res.status(),
            String::from_utf8_lossy(res.body().as_deref().unwrap_or_default())
        )),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test]
async fn origins_outside_the_list_are_refused_everywhere_before_anything_runs() {
    let hero = Hero::start(&[
        "--allowed-origins",
        "https://app.test,http://other.test:3000",
    ]);
    let evil = "https://evil.test";

    let (status, _, body) = handshake(&hero, Some(evil)).await;
    assert_eq!(status, 403);
    assert_eq!(
        body.trim(),
        "origin https://evil.test is not allowed (allowed_origins)"
    );
    let (status, headers, body) = handshake(&hero, Some("https://app.test")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["access-control-allow-origin"], "https://app.test");
    let (status, _, body) = handshake(&hero, None).await;
    assert_eq!(
        status, 200,
        "no Origin: not a browser's cross-origin call: {body}"
    );
    let own = format!("http://127.0.0.1:{}", hero.port);
    let (status, _, body) = handshake(&hero, Some(&own)).await;
    assert_eq!(status, 200, "the server's own origin: {body}");

    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, hero.at("/faye"))
        .header("origin", evil)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 403);

    let refused = websocket(&hero, evil).await.unwrap_err();
    assert!(
        refused.starts_with("403") && refused.contains(evil),
        "{refused}"
    );
    websocket(&hero, "http://other.test:3000").await.unwrap();

    let api = reqwest::Client::new()
        .get(hero.at("/api/randomNumber"))
        .header("origin", evil)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 403);
    let api = reqwest::Client::new()
        .get(hero.at("/api/randomNumber"))
        .header("origin", "https://app.test")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
}

#[tokio::test]
async fn by_default_any_origin_is_allowed_as_faye_does() {
    let hero = Hero::start(&[]);
    let (status, headers, body) = handshake(&hero, Some("https://anywhere.test")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://anywhere.test"
    );
    websocket(&hero, "https://anywhere.test").await.unwrap();
}
