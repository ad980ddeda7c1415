use std::process::Command;

use serde_json::Value;

use crate::util::{python, repo};

#[test]
fn decoding_matches_python_cftime_in_every_calendar() {
    let out = Command::new(python()).arg(repo().join("tests/data/cftime_cases.py")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cases: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut compared = 0;
    let mut wrong = Vec::new();
    for case in &cases {
        let (units, calendar) = (case["units"].as_str().unwrap(), case["calendar"].as_str().unwrap());
        let values: Vec<f64> = serde_json::from_value(case["values"].clone()).unwrap();
        let ours = cloudify_cftime::decode(&values, units, Some(calendar));
        for (i, expected) in case["dates"].as_array().unwrap().iter().enumerate() {
            let Some(expected) = expected.as_str() else { continue }; // cftime refuses (e.g. weeks)
            let got = ours.as_ref().map(|dates| dates[i].to_string()).unwrap_or_else(|e| e.to_string());
            compared += 1;
            if got != expected {
                wrong.push(format!("{calendar} | {units} | {}: ours {got}, cftime {expected}", values[i]));
            }
        }
    }
    assert!(wrong.is_empty(), "{} of {compared} differ:\n{}", wrong.len(), wrong.join("\n"));
    assert!(compared > 500);
}
