//! Deep merge of TOML tables, the rule drop-ins follow.

/// Merges `overlay` into `base`: tables merge key by key, every other value is replaced.
pub fn merge_tables(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(incoming)) => {
                merge_tables(existing, incoming);
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn tables_merge_and_scalars_replace() {
        let mut base = table("[a]\nx = 1\ny = [1, 2]\n[b]\nz = 'keep'\n");
        merge_tables(&mut base, table("[a]\ny = [3]\nw = true\n"));
        assert_eq!(
            base,
            table("[a]\nx = 1\ny = [3]\nw = true\n[b]\nz = 'keep'\n")
        );
    }

    #[test]
    fn a_scalar_may_replace_a_table() {
        let mut base = table("[a]\nx = 1\n");
        merge_tables(&mut base, table("a = 2\n"));
        assert_eq!(base, table("a = 2\n"));
    }
}
