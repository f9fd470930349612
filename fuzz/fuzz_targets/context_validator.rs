//! The context submission validator: any JSON body of `POST /api/v1/contexts`, parsed and
//! checked against the default limits. Refusals are answers; a panic is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quire_core::{JobLimits, NewContext};

fuzz_target!(|data: &[u8]| {
    if let Ok(context) = serde_json::from_slice::<NewContext>(data) {
        let _ = context.validate(&JobLimits::default());
    }
});
