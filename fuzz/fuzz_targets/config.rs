//! Any text as `billing.toml`: parsing and validation never panic, and a config that passes
//! validation is consistent (every group's plan exists, group names are safe path segments).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = rerate::config::parse(text, "fuzz.toml") else {
        return;
    };
    for group in &config.groups {
        assert!(
            config.plans.iter().any(|p| p.name == group.pricing_plan),
            "group {} refers to a missing plan",
            group.name
        );
        assert!(
            !group.name.is_empty()
                && group.name.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'-'
                    || b == b'_'),
            "unsafe group name {:?} passed validation",
            group.name
        );
    }
});
