//! docs/connectors.md lists every option the crate declares, as the registry documents it.

#[test]
fn docs_connectors_md_lists_every_option() {
    let registry = riffle_api::config_keys::Registry::new(riffle_connectors::options());
    assert!(registry.duplicates().is_empty(), "{:?}", registry.duplicates());
    let md = registry.markdown();
    let table = md.split_once("\n## Formats and file connectors\n\n").expect("one group").1;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/connectors.md");
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    assert!(doc.contains(table), "docs/connectors.md's option table is out of date; it should read:\n<<<\n{table}>>>");
}
