//! Text that shows nothing, or shows something other than it holds, is refused in comments and
//! tickets, and nothing is stored; ordinary text in any script still goes through.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const RLO: &str = "\u{202E}";
const ZWSP: &str = "\u{200B}";

async fn create(app: &TestApp, body: Value) -> reqwest::Response {
    app.post("/api/v1/releases", &app.requester(), body).await
}

async fn stored(app: &TestApp) -> (i64, i64, i64) {
    (
        app.count("SELECT COUNT(*) FROM releases").await,
        app.count("SELECT COUNT(*) FROM approvals").await,
        app.count("SELECT COUNT(*) FROM audit_log").await,
    )
}

#[tokio::test]
async fn a_comment_of_twelve_zero_width_spaces_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let before = stored(&app).await;
    let r = create(&app, json!({"machine_id": machine(1), "comment": ZWSP.repeat(12)})).await;
    assert_eq!(error_code(r).await, (StatusCode::UNPROCESSABLE_ENTITY, "invalid_comment".into()));
    assert_eq!(stored(&app).await, before);
}

#[tokio::test]
async fn a_comment_that_only_looks_long_enough_is_refused() {
    let app = spawn_app().await;
    let before = stored(&app).await;
    for comment in [format!("ok{}", "\u{3164}".repeat(30)), format!("a{}b", " ".repeat(30))] {
        let r = create(&app, json!({"machine_id": machine(1), "comment": comment})).await;
        assert_eq!(error_code(r).await, (StatusCode::UNPROCESSABLE_ENTITY, "invalid_comment".into()), "{comment:?}");
    }
    assert_eq!(stored(&app).await, before);
}

#[tokio::test]
async fn a_comment_with_a_right_to_left_override_is_refused_on_create_approve_and_reject() {
    let app = spawn_app().await;
    let before = stored(&app).await;
    let spoof = format!("scanned clean {RLO}gnp.exe");
    let r = create(&app, json!({"machine_id": machine(1), "comment": spoof})).await;
    assert_eq!(error_code(r).await, (StatusCode::UNPROCESSABLE_ENTITY, "invalid_comment".into()));
    assert_eq!(stored(&app).await, before);

    let id = app.create_release(2).await["id"].as_str().unwrap().to_string();
    let before = stored(&app).await;
    let bob = app.approver("bob");
    for action in ["approve", "reject"] {
        let r = app.post(&format!("/api/v1/releases/{id}/{action}"), &bob, json!({"comment": spoof})).await;
        assert_eq!(error_code(r).await, (StatusCode::UNPROCESSABLE_ENTITY, "invalid_comment".into()), "{action}");
    }
    assert_eq!(stored(&app).await, before, "no approval, rejection or audit entry");
    assert_eq!(app.release(&id).await["status"], "pending");
}

#[tokio::test]
async fn a_ticket_with_a_zero_width_space_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let before = stored(&app).await;
    for ticket in [format!("INC-1234{ZWSP}"), format!("INC-{RLO}4321"), "\u{FEFF}".to_string()] {
        let body = json!({"machine_id": machine(1), "comment": "reimaged and scanned clean", "ticket": ticket});
        let r = create(&app, body).await;
        assert_eq!(error_code(r).await, (StatusCode::UNPROCESSABLE_ENTITY, "invalid_ticket".into()), "{ticket:?}");
    }
    assert_eq!(stored(&app).await, before);
}

#[tokio::test]
async fn ordinary_text_in_any_script_with_newlines_and_tabs_is_stored_as_given() {
    let app = spawn_app().await;
    let comment = "Réimagé et analysé\n\tnettoyé — 再イメージ済み، تم الفحص";
    let body = json!({"machine_id": machine(1), "comment": comment, "ticket": "CHG-été-42"});
    let r = create(&app, body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let release: Value = r.json().await.unwrap();
    assert_eq!(release["comment"], comment);
    assert_eq!(release["ticket"], "CHG-été-42");
}
