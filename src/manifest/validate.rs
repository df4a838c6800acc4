//! Per-manifest validation rules (Go kpromo's `Manifest.Validate`), with Go's exact messages.
//!
//! Differences from Go, on purpose: the rules apply to thin manifests too (Go only
//! validates plain ones), and every problem is collected instead of stopping at the
//! first invalid digest or tag.
use std::path::Path;

use crate::digest::Digest;

use super::{Image, Position, Problem, RegistryContext};

/// Longest tag the registry spec allows (`^\w[\w.-]{0,127}$`).
const MAX_TAG_LEN: usize = 128;

/// True when `tag` matches `^\w[\w.-]{0,127}$` with ASCII `\w`, as Go's regexp does.
pub fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    match bytes.split_first() {
        Some((first, rest)) => {
            word(first) && bytes.len() <= MAX_TAG_LEN && rest.iter().all(|b| word(b) || *b == b'.' || *b == b'-')
        }
        None => false,
    }
}

/// The registries rules: exactly one source, at least one registry, no empty names.
/// `at` is where the `registries` list starts, or the top of the file when it is absent.
pub fn registries(file: &Path, registries: &[RegistryContext], at: Position) -> Vec<Problem> {
    let mut problems = Vec::new();
    if registries.is_empty() {
        problems.push(Problem::at(file, at, "'registries' field cannot be empty"));
    } else {
        let mut sources = registries.iter().filter(|r| r.src);
        match (sources.next(), sources.next()) {
            (None, _) => problems.push(Problem::at(file, at, "source registry must be set")),
            (Some(_), Some(second)) => {
                problems.push(Problem::at(file, second.pos, "cannot have more than 1 source registry"))
            }
            (Some(_), None) => {}
        }
    }
    for r in registries.iter().filter(|r| r.name.is_empty()) {
        problems.push(Problem::at(file, r.pos, "registries: 'name' field cannot be empty"));
    }
    problems
}

/// The images rules: names and dmaps present, every digest and tag well formed.
pub fn images(file: &Path, images: &[Image]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for image in images {
        if image.name.is_empty() {
            problems.push(Problem::at(file, image.pos, "images: 'name' field cannot be empty"));
        }
        if image.dmap.is_empty() {
            problems.push(Problem::at(file, image.pos, "images: 'dmap' field cannot be empty"));
        }
        for entry in &image.dmap {
            if !Digest::is_valid(&entry.digest) {
                problems.push(Problem::at(
                    file,
                    entry.pos,
                    format!("invalid digest: {}", entry.digest),
                ));
            }
            for tag in entry.tags.iter().filter(|t| !is_valid_tag(t)) {
                problems.push(Problem::at(file, entry.pos, format!("invalid tag: {tag}")));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::manifest::DigestEntry;

    const AT: Position = Position { line: 1, column: 1 };

    fn reg(name: &str, src: bool, line: u32) -> RegistryContext {
        RegistryContext {
            name: name.into(),
            service_account: None,
            src,
            pos: Position { line, column: 3 },
        }
    }

    fn messages(problems: &[Problem]) -> Vec<String> {
        problems.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn tags_from_the_go_test_table() {
        for good in [
            "a",
            "_",
            "latest",
            "_latest",
            "_____----hello........",
            "1.10",
            &"a".repeat(128),
        ] {
            assert!(is_valid_tag(good), "{good:?} should be valid");
        }
        for bad in ["", ".", "-", "héllo", "ü", "a b", " a", "a:b", "a/b", &"a".repeat(129)] {
            assert!(!is_valid_tag(bad), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn registries_rules_and_messages() {
        let f = Path::new("m.yaml");
        assert_eq!(
            messages(&registries(f, &[], AT)),
            ["m.yaml:1:1: 'registries' field cannot be empty"]
        );
        assert_eq!(
            messages(&registries(f, &[reg("a", false, 2)], AT)),
            ["m.yaml:1:1: source registry must be set"]
        );
        assert_eq!(
            messages(&registries(
                f,
                &[reg("a", true, 2), reg("b", false, 4), reg("c", true, 6)],
                AT
            )),
            ["m.yaml:6:3: cannot have more than 1 source registry"]
        );
        assert_eq!(
            messages(&registries(
                f,
                &[reg("a", true, 2), reg("", false, 4), reg("", false, 5)],
                AT
            )),
            [
                "m.yaml:4:3: registries: 'name' field cannot be empty",
                "m.yaml:5:3: registries: 'name' field cannot be empty"
            ]
        );
        assert!(registries(f, &[reg("a", true, 2), reg("b", false, 3)], AT).is_empty());
    }

    #[test]
    fn images_rules_collect_every_problem() {
        let entry = |digest: &str, tags: &[&str], line| DigestEntry {
            digest: digest.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            pos: Position { line, column: 5 },
        };
        let good = format!("sha256:{}", "0".repeat(64));
        let short = format!("sha256:{}", "0".repeat(63));
        let images_list = [
            Image {
                name: String::new(),
                dmap: vec![],
                pos: Position { line: 1, column: 3 },
            },
            Image {
                name: "foo".into(),
                dmap: vec![
                    entry(&good, &["1.0", "-bad", "latest", ".bad"], 4),
                    entry(&short, &[], 5),
                    entry("sha256:0", &["ok"], 6),
                ],
                pos: Position { line: 2, column: 3 },
            },
        ];
        assert_eq!(
            messages(&images(Path::new("i.yaml"), &images_list)),
            [
                "i.yaml:1:3: images: 'name' field cannot be empty".to_string(),
                "i.yaml:1:3: images: 'dmap' field cannot be empty".to_string(),
                "i.yaml:4:5: invalid tag: -bad".to_string(),
                "i.yaml:4:5: invalid tag: .bad".to_string(),
                format!("i.yaml:5:5: invalid digest: {short}"),
                "i.yaml:6:5: invalid digest: sha256:0".to_string(),
            ]
        );
    }

    proptest! {
        #[test]
        fn tag_validator_equals_the_go_regex(tag in "[a-zA-Z0-9_.\\-é ]{0,130}") {
            let re = regex::Regex::new(r"^[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}$").unwrap();
            prop_assert_eq!(is_valid_tag(&tag), re.is_match(&tag));
        }

        #[test]
        fn generated_valid_tags_pass(tag in "[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127}") {
            prop_assert!(is_valid_tag(&tag));
        }

        #[test]
        fn digest_validator_equals_the_go_regex(s in "(sha256:|sha512:|)[0-9a-fA-Fg]{62,66}") {
            let re = regex::Regex::new(r"^sha256:[0-9a-f]{64}$").unwrap();
            prop_assert_eq!(Digest::is_valid(&s), re.is_match(&s));
        }

        #[test]
        fn generated_valid_digests_round_trip(hex in "[0-9a-f]{64}") {
            let s = format!("sha256:{hex}");
            prop_assert_eq!(s.parse::<Digest>().map(|d| d.to_string()), Ok(s));
        }
    }
}
