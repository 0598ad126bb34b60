//! CSV tables: a header row, then one row per record.
//!
//! A column is numeric when every non-empty cell parses as a number; empty
//! cells in a numeric column become NaN (a missing rating, say). Any other
//! column is text.

use std::path::Path;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Number(Vec<f64>),
    Text(Vec<String>),
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::Number(v) => v.len(),
            Column::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Columns in file order.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<(String, Column)>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, c)| c.len())
    }
}

pub fn load_csv(path: &Path, delimiter: u8) -> Result<Table> {
    const OP: &str = "load_csv";
    let file = crate::io::open_read(OP, path)?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(file);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| Error::format(OP, path, format!("cannot read the header row: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    if headers.is_empty() || headers.iter().all(String::is_empty) {
        return Err(Error::format(OP, path, "the file has no header row"));
    }
    for (i, name) in headers.iter().enumerate() {
        if headers[..i].contains(name) {
            return Err(Error::format(
                OP,
                path,
                format!("the header names column {name:?} twice (columns {} and {}); each column needs its own name", headers[..i].iter().position(|h| h == name).unwrap_or(0) + 1, i + 1),
            ));
        }
    }
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); headers.len()];
    for (i, record) in reader.records().enumerate() {
        let record = record
            .map_err(|e| Error::format(OP, path, format!("row {} (line {}): {e}", i + 1, i + 2)))?;
        for (c, cell) in record.iter().enumerate() {
            cells[c].push(cell.to_string());
        }
    }
    let columns = headers
        .into_iter()
        .zip(cells)
        .map(|(name, col)| {
            let numeric = col.iter().any(|c| !c.is_empty())
                && col.iter().all(|c| c.is_empty() || c.parse::<f64>().is_ok());
            let column = if numeric {
                Column::Number(
                    col.iter()
                        .map(|c| c.parse::<f64>().unwrap_or(f64::NAN))
                        .collect(),
                )
            } else {
                Column::Text(col)
            };
            (name, column)
        })
        .collect();
    Ok(Table { columns })
}

pub fn save_csv(table: &Table, path: &Path) -> Result<()> {
    const OP: &str = "save_csv";
    let rows = table.rows();
    if let Some((name, c)) = table.columns.iter().find(|(_, c)| c.len() != rows) {
        return Err(Error::shape(
            OP,
            format!("column '{name}'"),
            format!("{rows} rows like the first column"),
            c.len().to_string(),
        ));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::sandbox::check_write(OP, parent.as_ref())?;
        std::fs::create_dir_all(parent).map_err(|e| Error::io(OP, parent, e))?;
    }
    let mut w = csv::Writer::from_path(path).map_err(|e| Error::format(OP, path, e.to_string()))?;
    let fail = |e: csv::Error| Error::format(OP, path, e.to_string());
    w.write_record(table.columns.iter().map(|(n, _)| n.as_str()))
        .map_err(fail)?;
    for r in 0..rows {
        let row: Vec<String> = table
            .columns
            .iter()
            .map(|(_, c)| match c {
                Column::Number(v) if v[r].is_nan() => String::new(),
                Column::Number(v) => format!("{}", v[r]),
                Column::Text(v) => v[r].clone(),
            })
            .collect();
        w.write_record(&row).map_err(fail)?;
    }
    w.flush().map_err(|e| Error::io(OP, path, e))?;
    Ok(())
}
