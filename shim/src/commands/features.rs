//! `husk features` (runtime-spec features.md): what husk recognises in
//! config.json, as JSON.

use serde::Serialize;

use super::Context;
use crate::cli::FeaturesArgs;
use crate::features::features;

pub fn run(_context: &Context, _args: &FeaturesArgs) -> anyhow::Result<u8> {
    // Indented with four spaces, as runc prints it.
    let mut json = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    features().serialize(&mut serde_json::Serializer::with_formatter(
        &mut json, formatter,
    ))?;
    println!("{}", String::from_utf8(json)?);
    Ok(0)
}
