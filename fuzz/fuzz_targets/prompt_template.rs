//! The prompt-template renderer: any template source (system and user messages) a
//! workspace may define, checked, then rendered with any value for its variable. Refusals
//! are answers; a panic or a render that runs away (the renderer has fuel) is a finding.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use quire_ai::prompt::{Output, PromptTemplate, Surroundings, Variable};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\u{0}');
    let (system, prompt, value) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let template = PromptTemplate {
        name: "fuzz.template".into(),
        version: 1,
        description: String::new(),
        output: Output::Text,
        variables: vec![Variable {
            name: "request".into(),
            description: String::new(),
            required: false,
            max_chars: 4_000,
            choices: Vec::new(),
        }],
        system: system.into(),
        prompt: prompt.into(),
        negative_prompt: String::new(),
        sections: vec!["problem".into(), "goals".into()],
    };
    if template.validate().is_ok() {
        let values = BTreeMap::from([("request".to_string(), value.to_string())]);
        let around = Surroundings { workspace: Some("Fuzz".into()), ..Surroundings::default() };
        let _ = template.render(&values, &around);
    }
});
