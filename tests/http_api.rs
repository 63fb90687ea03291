//! Black-box tests of `/api` over real HTTP against the `hero` binary.

mod support;

use serde_json::Value;
use support::Hero;

async fn get_json(url: &str) -> (reqwest::StatusCode, Value) {
    let res = reqwest::get(url).await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap())
}

#[tokio::test]
async fn random_number_answers_with_the_envelope() {
    let hero = Hero::start(&[]);
    let (status, body) = get_json(&hero.at("/api/randomNumber")).await;
    assert_eq!(status, 200);
    let n = body["randomNumber"].as_f64().unwrap();
    assert!((0.0..1.0).contains(&n));
    assert_eq!(body["serverInformation"]["serverName"], "actionhero API");
    assert_eq!(body["requesterInformation"]["remoteIP"], "127.0.0.1");
    assert_eq!(
        body["requesterInformation"]["receivedParams"],
        serde_json::json!({"action": "randomNumber", "apiVersion": 1})
    );
}
