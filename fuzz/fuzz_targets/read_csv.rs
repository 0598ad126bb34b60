//! Arbitrary bytes as a CSV file through `load_csv` (comma and tab
//! delimiters, picked by the first byte): header row, duplicate names,
//! ragged rows, quoting, number columns. Then the table must save and load
//! back with the same column names. Any panic or hang is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use voxlab::io::table::{load_csv, save_csv};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("voxlab-fuzz-csv-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d.join(name)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let delimiter = if mode & 1 == 0 { b',' } else { b'\t' };
    let p = scratch("in.csv");
    std::fs::write(&p, body).expect("write fuzz input");
    if let Ok(table) = load_csv(&p, delimiter) {
        let rows = table.rows();
        for (_, c) in &table.columns {
            assert_eq!(c.len(), rows);
        }
        let q = scratch("out.csv");
        if save_csv(&table, &q).is_ok() {
            if let Ok(back) = load_csv(&q, b',') {
                let names = |t: &voxlab::io::table::Table| -> Vec<String> {
                    t.columns.iter().map(|(n, _)| n.clone()).collect()
                };
                assert_eq!(names(&back).len(), names(&table).len());
            }
        }
    }
});
