//! The evaluation logic behind `waf-eval`, on a tiny corpus written here: feeding, per-class
//! tallies, the JSON shape, and a clear error for a missing file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use leadgen_waf::eval::{Corpus, EvalError, attack_protection_of};
use leadgen_waf::{AttackProtection, Engine};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "leadgen-waf-eval-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const CRS: &str = r#"{"id":"s1","class":"sqli","crs_rule":1,"method":"GET","uri":"/?id=1%27%20union%20select%20password%20from%20users--","headers":{},"body":""}
{"id":"s2","class":"sqli","crs_rule":1,"method":"POST","uri":"/","headers":{},"body":"id=1' or '1'='1"}
{"id":"s3","class":"sqli","crs_rule":1,"method":"GET","uri":"/?q=hello","headers":{}}
{"id":"x1","class":"xss","crs_rule":2,"method":"GET","uri":"/?q=%3Cscript%3Ealert(1)%3C/script%3E","headers":{}}
{"id":"w1","class":"made_up","crs_rule":3,"method":"GET","uri":"/?a=b","headers":{}}

"#;

const LI_SQLI: &str = "# comment\n1%27%20or%201%3D1--\n1' union select null,null&x--\nplain\n";
const LI_XSS: &str = "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E\n<svg/onload=alert(1)>\n";
const LI_BENIGN: &str = "# benign\nO%27Brien\nAT&T\n";
const B2B: &str = r#"{"id":"b1","method":"POST","uri":"/api/v1/leads","content_type":"application/json","body":"{\"name\":\"O'Brien\",\"company\":\"AT&T\"}","hard":false}
{"id":"b2","method":"GET","uri":"/api/v1/leads?q=select%20medical","hard":false}
{"id":"b3","method":"POST","uri":"/api/v1/leads","content_type":"application/json","body":"{\"notes\":\"please update the order; delete the old one\"}","hard":true}
{"id":"b4","method":"POST","uri":"/api/v1/campaigns","content_type":"application/json","body":"{\"html\":\"<p>Hi <b>there</b></p><script>track()</script>\"}","hard":true}
"#;

fn write_corpus(dir: &TempDir) {
    for (name, text) in [
        ("crs-attacks.jsonl", CRS),
        ("libinjection-sqli.txt", LI_SQLI),
        ("libinjection-xss.txt", LI_XSS),
        ("libinjection-benign.txt", LI_BENIGN),
        ("benign-b2b.jsonl", B2B),
    ] {
        std::fs::write(dir.0.join(name), text).unwrap();
    }
}

fn shipped_engine() -> Engine {
    let rules = include_str!("../../../config/waf-rules.json");
    let ap = attack_protection_of(rules).unwrap();
    Engine::new(AttackProtection::from_json(&ap).unwrap()).unwrap()
}

#[test]
fn tiny_corpus_report_has_the_documented_shape_and_counts() {
    let dir = TempDir::new("tiny");
    write_corpus(&dir);
    let corpus = Corpus::load(&dir.0).unwrap();
    assert_eq!(corpus.crs.len(), 5);
    assert_eq!(corpus.li_sqli.len(), 3, "comment lines are skipped");
    assert_eq!(corpus.li_benign.len(), 2);
    // A raw `&` stays inside the one parameter value.
    assert_eq!(
        corpus.li_sqli[1].request.query.as_deref(),
        Some("q=1' union select null,null%26x--")
    );
    // A CRS body without Content-Type is form data with a Content-Length.
    let s2 = &corpus.crs[1].request;
    assert_eq!(
        s2.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert!(
        s2.headers
            .iter()
            .any(|(k, v)| k == "Content-Length" && v == "15")
    );

    let report = corpus.evaluate(&shipped_engine());
    let j = report.to_json();
    let obj = j.as_object().unwrap();
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "benign_timing_us",
            "detection",
            "false_positives",
            "timing_us"
        ]
    );

    let det = j["detection"].as_object().unwrap();
    let mut classes: Vec<&str> = det.keys().map(String::as_str).collect();
    classes.sort_unstable();
    assert_eq!(
        classes,
        [
            "libinjection_sqli",
            "libinjection_xss",
            "made_up",
            "sqli",
            "xss"
        ]
    );
    assert_eq!(j["detection"]["sqli"]["detected"], 2);
    assert_eq!(j["detection"]["sqli"]["total"], 3);
    assert_eq!(j["detection"]["xss"]["detected"], 1);
    assert_eq!(j["detection"]["xss"]["total"], 1);
    assert_eq!(j["detection"]["made_up"]["detected"], 0);
    assert_eq!(j["detection"]["made_up"]["total"], 1);
    assert_eq!(j["detection"]["libinjection_sqli"]["detected"], 2);
    assert_eq!(j["detection"]["libinjection_sqli"]["total"], 3);
    assert_eq!(j["detection"]["libinjection_xss"]["detected"], 2);
    assert_eq!(j["detection"]["libinjection_xss"]["total"], 2);

    let fp = &j["false_positives"];
    assert_eq!(fp.as_object().unwrap().len(), 3);
    assert_eq!(fp["libinjection_benign"]["flagged"], 0);
    assert_eq!(fp["libinjection_benign"]["total"], 2);
    assert_eq!(fp["benign_b2b_normal"]["flagged"], 0);
    assert_eq!(fp["benign_b2b_normal"]["total"], 2);
    assert_eq!(
        fp["benign_b2b_hard"]["flagged"], 0,
        "campaign HTML is excluded"
    );
    assert_eq!(fp["benign_b2b_hard"]["total"], 2);

    let t = &j["timing_us"];
    let (p50, p90, p99) = (
        t["p50"].as_f64().unwrap(),
        t["p90"].as_f64().unwrap(),
        t["p99"].as_f64().unwrap(),
    );
    assert!(0.0 <= p50 && p50 <= p90 && p90 <= p99, "{t}");

    let table = report.table();
    assert!(table.contains("crs made_up") && table.contains("benign-b2b hard"));
}

#[test]
fn a_partial_corpus_reports_what_it_has_and_an_empty_one_is_refused() {
    let dir = TempDir::new("missing");
    write_corpus(&dir);
    std::fs::remove_file(dir.0.join("libinjection-xss.txt")).unwrap();
    std::fs::write(dir.0.join("libinjection-benign.txt"), "").unwrap();
    // A validation directory of some files only (as waf-payloads is): their rows and no others.
    let corpus = Corpus::load(&dir.0).unwrap();
    assert!(corpus.li_xss.is_empty() && corpus.li_benign.is_empty());
    let engine = Engine::new(leadgen_waf::AttackProtection::default()).unwrap();
    let table = corpus.evaluate(&engine).table();
    assert!(!table.contains("libinjection xss"), "{table}");
    assert!(!table.contains("libinjection benign"), "{table}");
    assert!(table.contains("libinjection sqli"), "{table}");

    let empty = TempDir::new("empty");
    let err = Corpus::load(&empty.0).unwrap_err();
    assert!(matches!(err, EvalError::Read { .. }));
    assert!(err.to_string().contains("crs-attacks.jsonl"), "{err}");
}

#[test]
fn a_rules_file_without_attack_protection_is_refused() {
    assert!(attack_protection_of("{}").is_err());
    assert!(attack_protection_of("not json").is_err());
    assert!(attack_protection_of(r#"{"attack_protection": {}}"#).is_ok());
}
