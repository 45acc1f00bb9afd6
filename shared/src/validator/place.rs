//! Where a cell is: what a cell's error and a key's error both report.

use super::records::Record;

/// Where a cell is, for its error messages.
pub(super) struct CellPlace {
    pub(super) row: u64,
    pub(super) line: u64,
    pub(super) offset: u64,
    pub(super) field_index: usize,
    pub(super) column: usize,
}

impl CellPlace {
    pub(super) fn new(record: &Record<'_>, field_index: usize, column: usize) -> CellPlace {
        CellPlace {
            row: record.row,
            line: record.line,
            offset: record.byte_offset,
            field_index,
            column,
        }
    }
}
