//! Parses arbitrary text as a policy file.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = cosmoguard_policy::Policy::parse(text, "fuzz.toml");
});
