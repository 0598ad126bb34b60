//! Arbitrary bytes through voxlab's JSON path: parse (serde_json, as
//! `load_json` does), convert to script values, and write them back as
//! `save_json` and `record` do. Deep nesting, huge numbers, odd strings:
//! any panic, stack overflow or hang is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxlab::engine::json::{dynamic_to_json, json_to_dynamic};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    let script_value = json_to_dynamic(&value);
    // What was read (serde_json stops at 128 levels) can be written back.
    let back =
        dynamic_to_json("save_json", &script_value).expect("a value read from JSON writes back");
    let again: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&back).expect("serialise")).expect("re-read");
    assert_eq!(back, again);
});
