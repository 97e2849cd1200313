//! The one table renderer of the reports: columns with headers (or none), left or right
//! aligned, each as wide as its widest cell or a fixed width; one space between columns unless
//! a column asks for more. A fixed width is a minimum, as `{:<N}` is: a longer cell is not
//! cut. The last column, when left-aligned, is not padded (no trailing spaces).

/// How a column's cells line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Padded on the right.
    Left,
    /// Padded on the left.
    Right,
}

/// One column.
#[derive(Clone, Debug)]
pub struct Column {
    header: &'static str,
    align: Align,
    width: Option<usize>,
    gap: usize,
}

impl Column {
    /// A left-aligned column as wide as its widest cell (header included).
    pub fn left(header: &'static str) -> Column {
        Column {
            header,
            align: Align::Left,
            width: None,
            gap: 1,
        }
    }

    /// A right-aligned column as wide as its widest cell (header included).
    pub fn right(header: &'static str) -> Column {
        Column {
            align: Align::Right,
            ..Column::left(header)
        }
    }

    /// This width, whatever the cells (a longer cell pushes the rest of its line only).
    pub fn width(self, width: usize) -> Column {
        Column {
            width: Some(width),
            ..self
        }
    }

    /// `gap` spaces before this column instead of one.
    pub fn gap(self, gap: usize) -> Column {
        Column { gap, ..self }
    }
}

/// A table: its columns, then rows of cells.
#[derive(Clone, Debug)]
pub struct Table {
    indent: &'static str,
    columns: Vec<Column>,
    headers: bool,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table whose lines start with `indent`, with a header line.
    pub fn new(indent: &'static str, columns: Vec<Column>) -> Table {
        Table {
            indent,
            columns,
            headers: true,
            rows: Vec::new(),
        }
    }

    /// The same table without its header line.
    pub fn without_headers(self) -> Table {
        Table {
            headers: false,
            ..self
        }
    }

    /// Adds a row: one cell per column (missing cells are empty).
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The lines, each ending in a newline; nothing (not even the headers) without rows.
    pub fn render(&self) -> String {
        if self.rows.is_empty() {
            return String::new();
        }
        let len = |s: &str| s.chars().count();
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                let c = &self.columns[i];
                c.width.unwrap_or_else(|| {
                    let cells = self.rows.iter().filter_map(|r| r.get(i)).map(|s| len(s));
                    let header = if self.headers { len(c.header) } else { 0 };
                    cells.fold(header, usize::max)
                })
            })
            .collect();
        let headers: Vec<String> = self.columns.iter().map(|c| c.header.into()).collect();
        let mut out = String::new();
        for row in self
            .headers
            .then_some(&headers)
            .into_iter()
            .chain(&self.rows)
        {
            out.push_str(self.indent);
            for (i, (c, width)) in self.columns.iter().zip(&widths).enumerate() {
                let cell = row.get(i).map_or("", String::as_str);
                if i > 0 {
                    out.extend(std::iter::repeat_n(' ', c.gap));
                }
                let last = i + 1 == self.columns.len();
                match c.align {
                    Align::Left if last => out.push_str(cell),
                    Align::Left => out.push_str(&format!("{cell:<width$}")),
                    Align::Right => out.push_str(&format!("{cell:>width$}")),
                }
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_come_from_content_or_are_fixed() {
        let mut t = Table::new(
            "  ",
            vec![
                Column::left("NAME"),
                Column::right("SIZE"),
                Column::left("STATE").width(3),
                Column::left("NOTE").gap(2),
            ],
        );
        t.row(["a", "1", "ok", "x"]);
        t.row(["longer", "12345", "failed", ""]);
        t.row(["b"]);
        assert_eq!(
            t.render(),
            concat!(
                "  NAME    SIZE STATE  NOTE\n",
                "  a          1 ok   x\n",
                "  longer 12345 failed  \n",
                "  b                 \n",
            )
        );
    }

    #[test]
    fn headers_are_optional_and_an_empty_table_is_nothing() {
        let mut t = Table::new("", vec![Column::left("LONG HEADER"), Column::left("B")]);
        assert_eq!(t.render(), "");
        t = t.without_headers();
        t.row(["a", "b"]);
        assert_eq!(t.render(), "a b\n");
    }
}
