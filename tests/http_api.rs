//! Black-box tests of `/api` (PROTOCOL 3.1) over real HTTP against `hero-testbed`
//! (the `hero` host plus the test actions) and the production `hero` binary.

#![allow(clippy::unwrap_used)]

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Hero, testbed};

async fn send(method: Method, url: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let res = reqwest::Client::new()
        .request(method, url)
        .send()
        .await
        .unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, res.text().await.unwrap())
}

async fn get_json(url: &str) -> (StatusCode, Value) {
    let (status, _, text) = send(Method::GET, url).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

fn start_testbed(args: &[&str]) -> Hero {
    Hero::start_with(testbed().args(args.iter().copied()))
}

#[tokio::test]
async fn random_number_answers_with_the_envelope() {
    let hero = Hero::start(&[]);
    let (status, headers, text) = send(Method::GET, &hero.at("/api/randomNumber")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
    assert!(
        text.contains("\n  \"randomNumber\""),
        "pretty-printed: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    let n = body["randomNumber"].as_f64().unwrap();
    assert!((0.0..1.0).contains(&n));
    assert_eq!(body["serverInformation"]["serverName"], "actionhero API");
    assert_eq!(body["serverInformation"]["apiVersion"], "0.0.1");
    assert!(body["serverInformation"]["requestDuration"].is_u64());
    assert!(body["serverInformation"]["currentTime"].as_u64().unwrap() > 1_700_000_000_000);
    let requester = &body["requesterInformation"];
    assert_eq!(requester["remoteIP"], "127.0.0.1");
    let fingerprint = requester["fingerprint"].as_str().unwrap();
    assert!(
        requester["id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{fingerprint}-"))
    );
    assert_eq!(
        requester["receivedParams"],
        json!({"action": "randomNumber", "apiVersion": 1})
    );
    assert!(body.get("error").is_none());
}

#[tokio::test]
async fn every_method_reaches_the_action_by_path_and_by_param() {
    let hero = start_testbed(&[]);
    let client = reqwest::Client::new();
    for method in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ] {
        for url in [
            hero.at("/api/echoTest?kept=q"),
            hero.at("/api?action=echoTest&kept=q"),
            hero.at("/api/?action=echoTest&kept=q"),
        ] {
            let res = client.request(method.clone(), &url).send().await.unwrap();
            assert_eq!(res.status(), 200, "{method} {url}");
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["echo"]["kept"], "q", "{method} {url}: {body}");
            assert_eq!(body["echo"]["action"], "echoTest");
            assert_eq!(body["connectionType"], "web");
        }
    }
}

#[tokio::test]
async fn params_come_from_query_form_and_json_and_undeclared_ones_are_dropped() {
    let hero = start_testbed(&[]);
    let client = reqwest::Client::new();
    let url = hero.at("/api/echoTest");

    // Form body (and the query, which the body overrides).
    let body: Value = client
        .post(format!("{url}?kept=fromQuery&dropped=1"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("kept=form+value%21&alsoDropped=2")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["echo"]["kept"], "form value!");
    assert_eq!(body["echo"]["withDefault"], "fallback", "default applied");
    for dropped in ["dropped", "alsoDropped"] {
        assert!(
            body["echo"].get(dropped).is_none(),
            "{dropped} reached the action: {body}"
        );
        assert!(
            body["requesterInformation"]["receivedParams"]
                .get(dropped)
                .is_none()
        );
    }

    // JSON object body keeps its types.
    let body: Value = client
        .put(&url)
        .json(&json!({"kept": {"nested": [1, 2]}, "withDefault": "given", "dropped": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["echo"]["kept"], json!({"nested": [1, 2]}));
    assert_eq!(body["echo"]["withDefault"], "given");
    assert!(body["echo"].get("dropped").is_none());

    // JSON array body becomes `payload`.
    let body: Value = client
        .patch(&url)
        .json(&json!([1, "two", {"three": 3}]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["echo"]["payload"], json!([1, "two", {"three": 3}]));

    // The reserved params survive scrubbing.
    let (_, body) = get_json(&hero.at("/api/echoTest?file=f.txt&apiVersion=1&other=x")).await;
    assert_eq!(body["echo"]["file"], "f.txt");
    assert_eq!(body["echo"]["apiVersion"], 1);
    assert!(body["echo"].get("other").is_none());
}

#[tokio::test]
async fn defaults_formatters_and_validators_run_before_the_action() {
    let hero = start_testbed(&[]);
    let (_, body) = get_json(&hero.at("/api/validatorTest?number=21")).await;
    assert_eq!(body["number"], 21, "formatted to a number: {body}");
    assert_eq!(body["doubled"], 42);

    let (status, body) = get_json(&hero.at("/api/validatorTest?number=-4")).await;
    assert_eq!(status, 200, "error codes are off by default");
    assert_eq!(body["error"], "Error: number must be a positive integer");

    let (_, body) = get_json(&hero.at("/api/validatorTest")).await;
    assert_eq!(
        body["error"],
        "Error: number is a required parameter for this action"
    );
    let (_, body) = get_json(&hero.at("/api/validatorTest?number=")).await;
    assert_eq!(
        body["error"],
        "Error: number is a required parameter for this action"
    );
}

#[tokio::test]
async fn api_version_selects_the_version_and_defaults_to_the_newest() {
    let hero = start_testbed(&[]);
    let (_, body) = get_json(&hero.at("/api/versionTest")).await;
    assert_eq!(body["versionTest"], 2);
    assert_eq!(
        body["requesterInformation"]["receivedParams"]["apiVersion"],
        2
    );
    let (_, body) = get_json(&hero.at("/api/versionTest?apiVersion=1")).await;
    assert_eq!(body["versionTest"], 1);
    let body: Value = reqwest::Client::new()
        .post(hero.at("/api/versionTest"))
        .json(&json!({"apiVersion": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["versionTest"], 2);
    for bad in ["3", "zero", "-1"] {
        let (_, body) = get_json(&hero.at(&format!("/api/versionTest?apiVersion={bad}"))).await;
        assert_eq!(
            body["error"],
            "Error: versionTest is not a known action or that is not a valid apiVersion.",
            "apiVersion={bad}"
        );
    }
}

#[tokio::test]
async fn a_callback_param_gives_jsonp() {
    let hero = Hero::start(&[]);
    let (status, headers, text) =
        send(Method::GET, &hero.at("/api/randomNumber?callback=my.cb_1")).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-type"],
        "application/javascript; charset=utf-8"
    );
    let inner = text
        .strip_prefix("my.cb_1(")
        .and_then(|t| t.strip_suffix(");"))
        .unwrap_or_else(|| panic!("not JSONP: {text}"));
    let body: Value = serde_json::from_str(inner).unwrap();
    assert!(body["randomNumber"].is_f64());
    assert_eq!(
        body["requesterInformation"]["receivedParams"]["callback"],
        "my.cb_1"
    );

    // A callback that is not a plain identifier path is not echoed into script.
    let (_, headers, text) =
        send(Method::GET, &hero.at("/api/randomNumber?callback=alert(1)")).await;
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
    assert!(text.starts_with('{'), "{text}");
}

#[tokio::test]
async fn the_api_root_documents_every_action_and_version() {
    let hero = start_testbed(&[]);
    for url in [hero.at("/api/"), hero.at("/api")] {
        let (status, body) = get_json(&url).await;
        assert_eq!(status, 200);
        let docs = &body["documentation"];
        assert_eq!(docs["randomNumber"]["1"]["name"], "randomNumber");
        assert!(
            docs["randomNumber"]["1"]["description"]
                .as_str()
                .unwrap()
                .contains("random")
        );
        assert_eq!(docs["versionTest"]["1"]["version"], 1);
        assert_eq!(docs["versionTest"]["2"]["version"], 2);
        assert_eq!(
            docs["validatorTest"]["1"]["inputs"]["required"],
            json!(["number"])
        );
        assert_eq!(
            docs["echoTest"]["1"]["inputs"]["optional"],
            json!(["kept", "withDefault", "payload"])
        );
        assert_eq!(
            docs["webBlockedTest"]["1"]["blockedConnectionTypes"],
            json!(["web"])
        );
        assert!(body["serverInformation"]["serverName"].is_string());
    }
}

#[tokio::test]
async fn errors_answer_200_unless_return_error_codes_is_on() {
    let cases = [
        (
            "/api/noSuchAction",
            404,
            "Error: noSuchAction is not a known action or that is not a valid apiVersion.",
        ),
        (
            "/api/validatorTest",
            422,
            "Error: number is a required parameter for this action",
        ),
        (
            "/api/panicTest",
            500,
            "Error: The server experienced an internal error",
        ),
        ("/api/errorTest", 400, "Error: errorTest always fails"),
        (
            "/api/validatorTest?number=-3",
            400,
            "Error: number must be a positive integer",
        ),
    ];
    let off = start_testbed(&[]);
    for (path, _, error) in cases {
        let (status, body) = get_json(&off.at(path)).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body["error"], error, "{path}");
    }

    let on = start_testbed(&["--return-error-codes"]);
    for (path, code, error) in cases {
        let (status, body) = get_json(&on.at(path)).await;
        assert_eq!(status.as_u16(), code, "{path}");
        assert_eq!(body["error"], error, "{path}");
        assert!(
            body["serverInformation"].is_object(),
            "{path}: the envelope is kept"
        );
    }
    let (status, body) = get_json(&on.at("/api/webBlockedTest")).await;
    assert_eq!(status, 400);
    assert!(
        body.get("reached").is_none(),
        "a blocked action must not run: {body}"
    );
    assert!(body["error"].as_str().unwrap().contains("web"), "{body}");
}

#[tokio::test]
async fn a_service_error_passed_on_with_question_mark_is_readable_and_logged() {
    let hero = start_testbed(&["--return-error-codes"]);
    let (status, body) = get_json(&hero.at("/api/serviceErrorTest?room=nope")).await;
    assert_eq!(status, 500);
    assert_eq!(body["error"], "Error: room does not exist", "{body}");
    let line = hero
        .wait_for_log(
            "action serviceErrorTest failed: room does not exist",
            support::WAIT,
        )
        .unwrap_or_else(|| panic!("not logged:\n{}", hero.logs().join("\n")));
    assert!(line.contains("WARN"), "{line}");
    // The same action on a room that exists succeeds.
    let (status, body) = get_json(&hero.at("/api/serviceErrorTest?room=defaultRoom")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["broadcast"], true);
}

#[tokio::test]
async fn a_panicking_action_is_a_500_and_the_host_keeps_serving() {
    let hero = start_testbed(&["--return-error-codes"]);
    for _ in 0..3 {
        let (status, body) = get_json(&hero.at("/api/panicTest")).await;
        assert_eq!(status, 500);
        assert_eq!(
            body["error"],
            "Error: The server experienced an internal error"
        );
        assert!(
            !body.to_string().contains("on purpose"),
            "panic details leak: {body}"
        );
    }
    let (status, body) = get_json(&hero.at("/api/randomNumber")).await;
    assert_eq!(status, 200);
    assert!(body["randomNumber"].is_f64());
    assert!(
        hero.wait_for_log("panicTest panicked on purpose", support::WAIT)
            .is_some(),
        "the panic is logged"
    );
    let (_, body) = get_json(&hero.at("/api/status")).await;
    assert_eq!(body["stats"]["actions"]["panicTest"]["failed"], 3);
}

#[tokio::test]
async fn the_session_cookie_identifies_the_requester_across_requests() {
    let hero = Hero::start(&[]);
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let first = client
        .get(hero.at("/api/randomNumber"))
        .send()
        .await
        .unwrap();
    let cookie = first.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("sessionID="), "{cookie}");
    let first: Value = first.json().await.unwrap();
    let fingerprint = first["requesterInformation"]["fingerprint"]
        .as_str()
        .unwrap();
    assert!(
        cookie.starts_with(&format!("sessionID={fingerprint};")),
        "{cookie}"
    );

    let second = client
        .post(hero.at("/api/randomNumber"))
        .send()
        .await
        .unwrap();
    assert!(
        second.headers().get("set-cookie").is_none(),
        "the cookie is not re-issued"
    );
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["requesterInformation"]["fingerprint"], fingerprint);
    assert_ne!(
        second["requesterInformation"]["id"], first["requesterInformation"]["id"],
        "the id is per request"
    );

    // Without the cookie, another fingerprint.
    let (_, other) = get_json(&hero.at("/api/randomNumber")).await;
    assert_ne!(other["requesterInformation"]["fingerprint"], fingerprint);
}

#[tokio::test]
async fn options_head_and_trace() {
    let hero = Hero::start(&[]);
    let (status, headers, text) = send(Method::OPTIONS, &hero.at("/api/randomNumber")).await;
    assert_eq!(status, 200);
    assert!(text.is_empty(), "OPTIONS has no body: {text}");
    let allowed = headers["access-control-allow-methods"].to_str().unwrap();
    for m in [
        "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE",
    ] {
        assert!(allowed.contains(m), "{m} in {allowed}");
    }
    assert_eq!(headers["access-control-allow-origin"], "*");

    let (status, headers, text) = send(Method::HEAD, &hero.at("/api/randomNumber")).await;
    assert_eq!(status, 200);
    assert!(text.is_empty(), "HEAD has no body: {text}");
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");

    let (status, _, text) = send(Method::TRACE, &hero.at("/api/randomNumber?x=1&y=two")).await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body["requesterInformation"]["receivedParams"],
        json!({"action": "randomNumber", "x": "1", "y": "two"}),
        "TRACE echoes what was received and runs nothing"
    );
    assert!(body.get("randomNumber").is_none());
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_and_bad_json_is_400() {
    let hero = Hero::start(&["--max-body-bytes", "1000"]);
    let client = reqwest::Client::new();
    let url = hero.at("/api/randomNumber");

    let ok = client
        .post(&url)
        .body("a=".to_owned() + &"x".repeat(900))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    let res = client
        .post(&url)
        .body("a=".to_owned() + &"x".repeat(2000))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["error"],
        "Error: the request body is larger than 1000 bytes"
    );

    // Chunked, with no Content-Length to refuse up front.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![b'x'; 100])).collect();
    let res = client
        .post(&url)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);

    let res = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"a\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let body: Value = res.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("Error: the body is not valid JSON"),
        "{error}"
    );

    let res = client
        .post(&url)
        .header("content-type", "application/json")
        .body("42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["error"],
        "Error: the JSON body must be an object or an array"
    );

    // The host still serves.
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn the_production_binary_does_not_ship_the_test_actions() {
    let hero = Hero::start(&[]);
    let (_, body) = get_json(&hero.at("/api/")).await;
    let docs = body["documentation"].as_object().unwrap();
    for name in ["status", "randomNumber", "cacheTest", "sleepTest"] {
        assert!(docs.contains_key(name), "{name} missing");
    }
    for name in [
        "panicTest",
        "versionTest",
        "validatorTest",
        "webBlockedTest",
        "errorTest",
        "echoTest",
    ] {
        assert!(!docs.contains_key(name), "{name} shipped in hero");
    }
    let (_, body) = get_json(&hero.at("/api/panicTest")).await;
    assert_eq!(
        body["error"],
        "Error: panicTest is not a known action or that is not a valid apiVersion."
    );
}

#[tokio::test]
async fn cache_test_round_trips_through_the_cache() {
    let hero = Hero::start(&[]);
    let (_, body) = get_json(&hero.at("/api/cacheTest?key=k&value=v")).await;
    assert_eq!(
        body["cacheTestResults"],
        json!({"saveResp": true, "loadResp": {"key": "cacheTest_k", "value": "v"}, "deleteResp": true})
    );
}

#[tokio::test]
async fn a_static_action_past_the_call_deadline_answers_504_and_is_cancelled() {
    let hero = start_testbed(&["--return-error-codes", "--plugin-call-timeout-ms", "300"]);
    let started = std::time::Instant::now();
    let (status, body) = get_json(&hero.at("/api/hangTest")).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(
        body["error"],
        "Error: the action hangTest did not answer within 300 ms"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // A future is dropped at its deadline: nothing keeps running.
    let (_, status) = get_json(&hero.at("/api/status")).await;
    assert_eq!(status["plugins"]["stuckCalls"], 0, "{status}");
    let (ok, _) = get_json(&hero.at("/api/randomNumber")).await;
    assert_eq!(ok, 200);
}
