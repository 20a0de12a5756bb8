//! `husk list [--format table|json] [--quiet]`: the containers under
//! `--root`, as runc lists them.

use std::io::Write;

use super::{current_status, ContainerSummary, Context};
use crate::backend::backend_for;
use crate::cli::{ListArgs, OutputFormat};
use crate::state::LockMode;

pub fn run(context: &Context, args: &ListArgs) -> anyhow::Result<u8> {
    let mut summaries = Vec::new();
    for id in context.store.ids()? {
        // A container deleted meanwhile, or one half created, is skipped;
        // one that cannot be read is reported and skipped, as runc does.
        let summary = context
            .store
            .open(&id, LockMode::Shared)
            .and_then(|lock| lock.load())
            .map_err(anyhow::Error::from)
            .and_then(|record| {
                let status = current_status(backend_for(record.husk.backend).as_ref(), &record)?;
                Ok(ContainerSummary::new(&record, status))
            });
        match summary {
            Ok(summary) => summaries.push(summary),
            Err(error)
                if error
                    .downcast_ref::<crate::state::StateError>()
                    .is_some_and(|error| {
                        matches!(error, crate::state::StateError::NotFound { .. })
                    }) => {}
            Err(error) => eprintln!(
                "husk: list container {id}: {}",
                husk_init::engine::error_chain(error.as_ref())
            ),
        }
    }

    let mut stdout = std::io::stdout().lock();
    if args.quiet {
        for summary in &summaries {
            writeln!(stdout, "{}", summary.id)?;
        }
        return Ok(0);
    }
    match args.format {
        OutputFormat::Json => writeln!(stdout, "{}", serde_json::to_string(&summaries)?)?,
        OutputFormat::Table => {
            let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
                .map(String::from)
                .to_vec()];
            rows.extend(summaries.iter().map(|summary| {
                vec![
                    summary.id.clone(),
                    summary.pid.to_string(),
                    summary.status.to_string(),
                    summary.bundle.display().to_string(),
                    summary.created.clone(),
                    summary.owner.clone(),
                ]
            }));
            stdout.write_all(align_columns(&rows).as_bytes())?;
        }
    }
    Ok(0)
}

/// Lays rows out as runc's tabwriter does (minimum width 12, padding 3):
/// every column but the last as wide as its widest cell plus 3, at least 12.
fn align_columns(rows: &[Vec<String>]) -> String {
    const MIN_WIDTH: usize = 12;
    const PADDING: usize = 3;
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns.saturating_sub(1))
        .map(|column| {
            let widest = rows
                .iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0);
            (widest + PADDING).max(MIN_WIDTH)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        for (column, cell) in row.iter().enumerate() {
            match widths.get(column) {
                Some(width) => text.push_str(&format!("{cell:<width$}")),
                None => text.push_str(cell),
            }
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|cell| cell.to_string()).collect()
    }

    #[test]
    fn columns_line_up_like_runc_s() {
        let text = align_columns(&[
            row(&["ID", "PID", "STATUS", "OWNER"]),
            row(&["a-rather-long-id", "42", "running", "root"]),
        ]);
        assert_eq!(
            text,
            "ID                 PID         STATUS      OWNER\n\
             a-rather-long-id   42          running     root\n"
        );
    }
}
