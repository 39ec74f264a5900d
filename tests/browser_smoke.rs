//! The browser harness itself works: Chromium loads a page served by hookd.

mod common;

#[tokio::test(flavor = "multi_thread")]
async fn headless_chromium_reads_a_page_from_the_server() {
    let app = common::spawn_app().await;
    let url = app.url("/healthz");
    let text = tokio::task::spawn_blocking(move || {
        let browser = common::browser::launch();
        let tab = browser.new_tab().unwrap();
        tab.navigate_to(&url)
            .unwrap()
            .wait_until_navigated()
            .unwrap();
        tab.find_element("body").unwrap().get_inner_text().unwrap()
    })
    .await
    .unwrap();
    assert!(text.contains("ok"), "{text}");
}
