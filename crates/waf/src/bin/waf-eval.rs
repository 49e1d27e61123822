//! `waf-eval`: measures the WAF engine, configured with the shipped rules, on an evaluation corpus
//! directory in the format of the shared WAF data set.
//!
//! ```text
//! cargo run --release --bin waf-eval -- --corpus DIR [--json] [--rules FILE]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use leadgen_waf::eval::{Corpus, attack_protection_of};
use leadgen_waf::{AttackProtection, Engine};

/// The workspace's shipped rules file, used when `--rules` is not given.
const SHIPPED_RULES: &str = include_str!("../../../../config/waf-rules.json");

const USAGE: &str = "\
usage: waf-eval --corpus DIR [--json] [--mistakes] [--rules FILE]

Runs the WAF engine over an evaluation corpus and reports detection per attack class, false
positives per benign file (hard and normal apart) and inspection time per request.

  --corpus DIR   directory holding some of crs-attacks.jsonl, libinjection-sqli.txt,
                 libinjection-xss.txt, libinjection-benign.txt and benign-b2b.jsonl (absent or
                 empty files are left out of the report)
  --json         print exactly one JSON object instead of the table
  --mistakes     also list every attack allowed and every benign request flagged, with the
                 rules that fired (for a development set; never tune on a validation set)
  --rules FILE   a full waf-rules.json whose attack_protection object configures the engine
                 (default: the workspace's config/waf-rules.json, built in)
  --help         print this help
";

struct Args {
    corpus: PathBuf,
    json: bool,
    mistakes: bool,
    rules: Option<PathBuf>,
}

enum Parsed {
    Run(Args),
    Help,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Parsed, String> {
    let (mut corpus, mut json, mut mistakes, mut rules) = (None, false, false, None);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--help" | "-h" => return Ok(Parsed::Help),
            "--json" => json = true,
            "--mistakes" => mistakes = true,
            "--corpus" | "--rules" => {
                let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
                if a == "--corpus" {
                    corpus = Some(PathBuf::from(v));
                } else {
                    rules = Some(PathBuf::from(v));
                }
            }
            other => {
                if let Some(v) = other.strip_prefix("--corpus=") {
                    corpus = Some(PathBuf::from(v));
                } else if let Some(v) = other.strip_prefix("--rules=") {
                    rules = Some(PathBuf::from(v));
                } else {
                    return Err(format!("unknown argument {other:?}"));
                }
            }
        }
    }
    let corpus = corpus.ok_or("--corpus DIR is required")?;
    Ok(Parsed::Run(Args {
        corpus,
        json,
        mistakes,
        rules,
    }))
}

fn run(args: &Args) -> Result<(), String> {
    let rules = match &args.rules {
        Some(p) => {
            std::fs::read_to_string(p).map_err(|e| format!("rules file {}: {e}", p.display()))?
        }
        None => SHIPPED_RULES.to_owned(),
    };
    let ap = attack_protection_of(&rules)?;
    let cfg = AttackProtection::from_json(&ap).map_err(|e| e.to_string())?;
    let engine = Engine::new(cfg).map_err(|e| e.to_string())?;
    let corpus = Corpus::load(&args.corpus).map_err(|e| e.to_string())?;
    let report = corpus.evaluate(&engine);
    if args.json {
        let mut out = report.to_json();
        if args.mistakes {
            out["mistakes"] = corpus
                .mistakes(&engine)
                .into_iter()
                .map(|m| {
                    serde_json::json!({ "set": m.set, "id": m.id, "request": m.request, "rules": m.rules })
                })
                .collect();
        }
        println!("{out}");
    } else {
        print!("{}", report.table());
        if args.mistakes {
            for m in corpus.mistakes(&engine) {
                println!("{}\t{}\t{}\t{}", m.set, m.id, m.rules.join(" "), m.request);
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)) {
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Parsed::Run(args)) => match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("waf-eval: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("waf-eval: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
