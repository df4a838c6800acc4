//! Per-manifest validation rules (Go kpromo's `Manifest.Validate`), with Go's exact messages.
//!
//! Differences from Go, on purpose: the rules apply to thin manifests too (Go only
//! validates plain ones), and every problem is collected instead of stopping at the
//! first invalid digest or tag.
use std::path::Path;

use crate::digest::Digest;
use crate::registry::reference::{RegistryName, check_image_name, quoted};

use super::{Image, Position, Problem, RegistryContext};

pub use crate::registry::reference::is_valid_tag;

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
    for r in registries {
        if r.name.is_empty() {
            problems.push(Problem::at(file, r.pos, "registries: 'name' field cannot be empty"));
        } else if let Err(why) = RegistryName::parse(&r.name) {
            problems.push(Problem::at(
                file,
                r.pos,
                format!("registries: invalid name {}: {why}", quoted(&r.name)),
            ));
        }
    }
    problems
}

/// The images rules: names and dmaps present, every digest and tag well formed, and every
/// image name a repository path that stays under each of the manifest's `registries`
/// (the run writes `<registry path>/<image>`, so `..` would leave the project's path).
pub fn images(file: &Path, images: &[Image], registries: &[RegistryContext]) -> Vec<Problem> {
    let parsed: Vec<(&str, RegistryName)> = registries
        .iter()
        .filter_map(|r| RegistryName::parse(&r.name).ok().map(|p| (r.name.as_str(), p)))
        .collect();
    let mut problems = Vec::new();
    for image in images {
        if image.name.is_empty() {
            problems.push(Problem::at(file, image.pos, "images: 'name' field cannot be empty"));
        } else if let Err(why) = check_image_name(&image.name) {
            problems.push(Problem::at(
                file,
                image.pos,
                format!("images: invalid name {}: {why}", quoted(&image.name)),
            ));
        } else {
            let mut refused = parsed
                .iter()
                .filter_map(|(name, registry)| registry.repository(&image.name).err().map(|why| (name, why)));
            if let Some((registry, why)) = refused.next() {
                let more = match refused.count() {
                    0 => String::new(),
                    n => format!(" (and {n} more registries)"),
                };
                problems.push(Problem::at(
                    file,
                    image.pos,
                    format!(
                        "images: {} under {}{more}: {why}",
                        quoted(&image.name),
                        quoted(registry)
                    ),
                ));
            }
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
    fn registry_names_follow_the_grammar_at_their_position() {
        let f = Path::new("m.yaml");
        assert_eq!(
            messages(&registries(
                f,
                &[reg("gcr.io/stage", true, 2), reg("http://us.gcr.io/prod", false, 4)],
                AT
            )),
            [
                "m.yaml:4:3: registries: invalid name \"http://us.gcr.io/prod\": a registry name has no scheme: \
              drop \"http://\" (HTTPS is always used; plain HTTP only for loopback hosts and --insecure-registry)"
            ]
        );
    }

    #[test]
    fn image_names_must_stay_under_every_registry_path() {
        let f = Path::new("images.yaml");
        let image = |name: &str, line| Image {
            name: name.into(),
            dmap: vec![DigestEntry {
                digest: format!("sha256:{}", "0".repeat(64)),
                tags: vec![],
                pos: Position { line, column: 5 },
            }],
            pos: Position { line, column: 3 },
        };
        let regs = [
            reg("gcr.io/k8s-staging-proj00", true, 2),
            reg(&format!("us.gcr.io/{}", "p".repeat(200)), false, 3),
            reg(&format!("eu.gcr.io/{}", "q".repeat(200)), false, 4),
            reg("not a registry", false, 5),
        ];
        let found = messages(&images(
            f,
            &[image("../proj01/img000", 1), image(&"i".repeat(60), 4), image("ok", 7)],
            &regs,
        ));
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_eq!(
            found[0],
            "images.yaml:1:3: images: invalid name \"../proj01/img000\": \"..\" is not a path component: \
             a name cannot climb out of its registry's path"
        );
        assert_eq!(
            found[1],
            format!(
                "images.yaml:4:3: images: \"{}\" under \"us.gcr.io/{}\"… (210 characters) (and 1 more registries): \
                 the repository path would be 261 characters long; the limit is 255 (registry path and image name together)",
                "i".repeat(60),
                "p".repeat(70)
            )
        );
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
            messages(&images(Path::new("i.yaml"), &images_list, &[])),
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
