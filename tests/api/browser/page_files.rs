//! The page's files over HTTP, without a browser: every listed file at its path with its type
//! (a browser refuses to run an ES module served as anything but JavaScript).

use crate::helpers::spawn_app;

#[tokio::test]
async fn page_files_are_served_with_their_types() {
    let (app, _db) = spawn_app().await;
    for file in canopy::http::static_files::FILES {
        let response = app.client.get(app.url(file.url)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{}", file.url);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        let want = if file.file.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else if file.file.ends_with(".css") {
            "text/css; charset=utf-8"
        } else {
            "text/html; charset=utf-8"
        };
        assert_eq!(content_type, want, "{}", file.url);
        assert_eq!(response.text().await.unwrap(), file.body, "{}", file.url);
    }
    let index = app.client.get(app.url("/")).send().await.unwrap();
    let html = index.text().await.unwrap();
    assert!(
        html.contains(r#"<script type="module" src="js/app.js">"#),
        "index loads the entry module: {html}"
    );
    // Not served: the Node tests, Node's package.json, and the pre-split single script.
    for path in [
        "/tests/model.test.js",
        "/package.json",
        "/app.js",
        "/js/missing.js",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    app.stop().await;
}
