//! Companies through the front door: one per organization and normalised domain, created by
//! imports and the API's leads, pushed down to every lead when edited (ACL or not), scoped to
//! their organization, deleted only by admins and managers, audited.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::imports::import;
use crate::orgs::{Api, org_with_every_role, spawn};

async fn create(api: &Api, token: &str, body: Value) -> Value {
    let (s, v) = api
        .call(Method::POST, "/api/v1/leads", token, Some(body))
        .await;
    assert_eq!(s, 201, "{v}");
    v
}

async fn lead(api: &Api, token: &str, id: &str) -> Value {
    let (s, v) = api
        .call(Method::GET, &format!("/api/v1/leads/{id}"), token, None)
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

#[tokio::test]
async fn companies_are_one_per_domain_and_their_changes_reach_every_lead() {
    let app = spawn().await;
    let api = Api::new(&app);
    let (org, t, _) = org_with_every_role(&app, &api, "companies").await;
    let (admin, manager, user) = (&t[0], &t[1], &t[2]);
    let (s, v) = api
        .call(
            Method::PUT,
            "/api/v1/scoring",
            manager,
            Some(json!({"rules": [
                {"name": "Software", "field": "industry", "values": ["Information"], "points": 40},
                {"name": "Mid-size", "field": "employee_range", "values": ["51-200"], "points": 20}
            ]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // Two spellings of one domain make one company; the first lead's fields start it.
    let a = create(
        &api,
        user,
        json!({"first_name": "Ada", "company_name": "Globex", "company_domain": "https://www.Globex.example/about"}),
    )
    .await;
    let b = create(
        &api,
        user,
        json!({"first_name": "Ben", "company_name": "Globex Corp.", "company_domain": "globex.example"}),
    )
    .await;
    let company = a["company_id"].as_str().expect("linked").to_string();
    assert_eq!(b["company_id"], a["company_id"]);
    // A lead the user cannot read, of the same company.
    let c = create(
        &api,
        admin,
        json!({"first_name": "Cy", "company_domain": "globex.example", "industry": "Mining"}),
    )
    .await;
    assert_eq!(c["company_id"], a["company_id"]);
    let (s, v) = api
        .call(
            Method::PUT,
            &format!("/api/v1/leads/{}/acl", c["id"].as_str().unwrap()),
            admin,
            Some(json!({"read_groups": [], "write_groups": [], "sensitivity": "restricted"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    let (s, list) = api
        .call(Method::GET, "/api/v1/companies?q=GLO", user, None)
        .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["items"][0]["domain"], "globex.example");
    assert_eq!(list["items"][0]["name"], "Globex");
    let path = format!("/api/v1/companies/{company}");
    let (_, seen) = api.call(Method::GET, &path, user, None).await;
    assert_eq!(
        seen["leads"], 2,
        "the restricted lead is not counted for the user: {seen}"
    );
    let (_, seen) = api.call(Method::GET, &path, admin, None).await;
    assert_eq!(seen["leads"], 3, "{seen}");

    // Bad input is named; a second company for the domain is a conflict.
    for (body, status, field) in [
        (json!({"name": "X", "naics": "99"}), 400, "naics"),
        (
            json!({"name": "X", "employee_range": "huge"}),
            400,
            "employee_range",
        ),
        (json!({"industry": "Software"}), 400, "name"),
        (json!({"name": "X", "ceo": "Y"}), 400, "ceo"),
        (
            json!({"name": "Other Globex", "domain": "WWW.globex.example"}),
            409,
            "domain",
        ),
    ] {
        let (s, v) = api
            .call(Method::POST, "/api/v1/companies", user, Some(body.clone()))
            .await;
        assert_eq!(s, status, "{body}: {v}");
        assert!(v.to_string().contains(field), "{body}: {v}");
    }

    // An edit by the user reaches every lead of the company, the restricted one included, and
    // rescores them.
    let (s, v) = api
        .call(
            Method::PATCH,
            &path,
            user,
            Some(
                json!({"name": "Globex Corporation", "naics": "511210", "employee_range": "51-200",
                        "annual_revenue": 12_000_000, "technologies": ["Rust", "PostgreSQL"]}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["industry"], "Information", "named by its NAICS sector");
    for (who, l) in [(user, &a), (user, &b), (admin, &c)] {
        let now = lead(&api, who, l["id"].as_str().unwrap()).await;
        assert_eq!(now["company_name"], "Globex Corporation", "{now}");
        assert_eq!(now["industry"], "Information", "{now}");
        assert_eq!(now["employee_range"], "51-200", "{now}");
        assert_eq!(now["score"], 60, "{now}");
    }
    let (s, v) = api
        .call(Method::GET, "/api/v1/org/audit?limit=200", admin, None)
        .await;
    assert_eq!(s, 200);
    let trail = v.to_string();
    assert!(trail.contains("company.update"), "{trail}");

    // Another organization neither sees nor changes it.
    let (other, _) = api.sign_up("owner@elsewhere.test").await;
    let elsewhere = api.create_org(&other, "Elsewhere").await;
    let other = api.switch(&other, elsewhere).await;
    let (s, _) = api.call(Method::GET, &path, &other, None).await;
    assert_eq!(s, 404);
    let (s, v) = api
        .call(Method::PATCH, &path, &other, Some(json!({"name": "Mine"})))
        .await;
    assert_eq!(s, 404, "{v}");
    let (_, list) = api
        .call(Method::GET, "/api/v1/companies", &other, None)
        .await;
    assert_eq!(list["items"], json!([]));

    // An edit whose push did not happen (a crash between the two) is finished in the background.
    let su = app.db().superuser_pool().await;
    sqlx::query(
        "UPDATE app.companies SET industry = 'Mining', version = version + 1,
             updated_at = now() - interval '1 hour' WHERE id = $1",
    )
    .bind(company.parse::<Uuid>().unwrap())
    .execute(&su)
    .await
    .unwrap();
    let start = Instant::now();
    loop {
        let now = lead(&api, admin, c["id"].as_str().unwrap()).await;
        if now["industry"] == "Mining" {
            assert_eq!(now["score"], 20, "rescored: {now}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never pushed: {now}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Only admins and managers delete; the leads stay, unlinked, with their copy.
    let (s, v) = api.call(Method::DELETE, &path, user, None).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "role_denied");
    let (s, _) = api.call(Method::DELETE, &path, manager, None).await;
    assert_eq!(s, 204);
    let now = lead(&api, user, a["id"].as_str().unwrap()).await;
    assert_eq!(now["company_id"], Value::Null);
    assert_eq!(now["company_name"], "Globex Corporation");

    // An import makes one company per normalised domain, links every row, and fills a row's
    // blank company fields from its company.
    let csv = "first_name,email,company_name,company_domain,industry,employee_range\n\
               Dee,dee@initech.example,Initech,Initech.example,Software,11-50\n\
               Eve,eve@initech.example,,https://www.initech.example/careers,,\n\
               Fay,fay@hooli.example,Hooli,hooli.example,,\n";
    import(
        &app,
        &api,
        user,
        "companies.csv",
        csv.as_bytes().to_vec(),
        "create_only",
    )
    .await;
    type Text = Option<String>;
    let rows: Vec<(String, Text, Text, Text, Option<Uuid>)> =
        sqlx::query_as(
            "SELECT l.first_name, l.company_name, l.industry, l.employee_range, l.company_id
             FROM app.leads l WHERE l.org_id = $1 AND l.email_bidx IS NOT NULL ORDER BY l.first_name",
        )
        .bind(org)
        .fetch_all(&su)
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].4, rows[1].4, "one company for both spellings");
    assert!(rows[0].4.is_some() && rows[2].4.is_some() && rows[0].4 != rows[2].4);
    assert_eq!(
        (
            rows[1].1.as_deref(),
            rows[1].2.as_deref(),
            rows[1].3.as_deref()
        ),
        (Some("Initech"), Some("Software"), Some("11-50")),
        "filled from the company"
    );
    let companies: Vec<String> =
        sqlx::query_scalar("SELECT domain FROM app.companies WHERE org_id = $1 ORDER BY domain")
            .bind(org)
            .fetch_all(&su)
            .await
            .unwrap();
    assert_eq!(companies, ["hooli.example", "initech.example"]);
    // Its leads are one filter away.
    let (s, v) = api
        .call(
            Method::GET,
            &format!("/api/v1/leads?company={}", rows[0].4.unwrap()),
            user,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
}
