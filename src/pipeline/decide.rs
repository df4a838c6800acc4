//! The decision table of Go kpromo's `GetPromotionCandidates` (promoter/image/promotion), as a pure
//! function of what the plan learned about one edge's source and destination.
//!
//! Kept free of I/O so every legacy table-test case can be checked directly, and so the
//! planner can ask [`already_promoted`] before spending a source HEAD on an edge.
use crate::digest::Digest;

/// What the destination's copy of the edge's tag points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DstTag {
    /// The tag does not exist at the destination (or the edge is tagless).
    Absent,
    /// The tag already points to the edge's digest.
    Here,
    /// The tag points to another digest.
    Elsewhere(Digest),
}

/// Facts about one edge, gathered by the Plan phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub tagged: bool,
    pub dst_tag: DstTag,
    /// The destination repository has the edge's digest (under any tag or none).
    pub dst_has_digest: bool,
    /// The source repository has the edge's digest.
    pub src_has_digest: bool,
}

/// What to do with one edge. Nothing is ever deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Already promoted (cases 1 and 2).
    Skip,
    /// Already promoted (case 2, a tagless edge) but the source no longer has the digest:
    /// nothing to do, and reported as Go does (`…already promoted, but it is still _LOST_`)
    /// so that staging gets backfilled. Never fatal.
    SkipStillLost,
    /// The source does not have the digest: reported, never fatal unless `--fail-on-lost`.
    Lost,
    /// The destination tag points to another digest: tag moves are refused and make the
    /// whole plan fatal, so nothing is written.
    TagMove {
        current: Digest,
        /// The edge's digest is already in the destination under other tags.
        digest_in_dst: bool,
    },
    /// The destination has the digest under other tags (or none): only the tag is written.
    Retag,
    /// Copy the image (blobs, child manifests, manifest, tag).
    Copy,
}

impl Decision {
    /// The name used in the plan output and summaries.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Skip => "skip",
            Decision::SkipStillLost => "skip-still-lost",
            Decision::Lost => "lost",
            Decision::TagMove { .. } => "tag-move",
            Decision::Retag => "retag",
            Decision::Copy => "copy",
        }
    }

    /// Whether the Promote phase writes anything for this edge.
    pub fn writes(&self) -> bool {
        matches!(self, Decision::Retag | Decision::Copy)
    }
}

/// Cases 1 and 2: the destination already holds the edge (tag on the digest, or the
/// digest itself for a tagless edge). Needs no source facts.
pub fn already_promoted(tagged: bool, dst_tag: DstTag, dst_has_digest: bool) -> bool {
    if tagged {
        dst_tag == DstTag::Here
    } else {
        dst_has_digest
    }
}

/// Evaluates the decision table in Go's order.
pub fn decide(facts: &Facts) -> Decision {
    if already_promoted(facts.tagged, facts.dst_tag, facts.dst_has_digest) {
        return if facts.tagged || facts.src_has_digest {
            Decision::Skip
        } else {
            Decision::SkipStillLost
        };
    }
    if !facts.src_has_digest {
        return Decision::Lost;
    }
    if let DstTag::Elsewhere(current) = facts.dst_tag {
        return Decision::TagMove {
            current,
            digest_in_dst: facts.dst_has_digest,
        };
    }
    if facts.dst_has_digest {
        Decision::Retag
    } else {
        Decision::Copy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn other() -> Digest {
        Digest::of(b"another image")
    }

    fn facts(tagged: bool, dst_tag: DstTag, dst_has_digest: bool, src_has_digest: bool) -> Facts {
        Facts {
            tagged,
            dst_tag,
            dst_has_digest,
            src_has_digest,
        }
    }

    // The case names are Go kpromo's legacy promotion table tests (`TestPromotion` in promo-tools' legacy/dockerregistry).

    #[test]
    fn no_promotion_tag_is_already_promoted() {
        assert_eq!(decide(&facts(true, DstTag::Here, true, true)), Decision::Skip);
        // Already promoted wins even when staging lost the digest since.
        assert_eq!(decide(&facts(true, DstTag::Here, true, false)), Decision::Skip);
    }

    #[test]
    fn promote_1_tag_image_digest_does_not_exist_in_dest() {
        assert_eq!(decide(&facts(true, DstTag::Absent, false, true)), Decision::Copy);
    }

    #[test]
    fn promote_1_tag_image_already_exists_in_dest_but_digest_does_not() {
        // The repository has other images and tags; this digest is new there.
        assert_eq!(decide(&facts(true, DstTag::Absent, false, true)), Decision::Copy);
    }

    #[test]
    fn tag_already_exists_in_dest_but_points_to_a_different_digest_move_tag() {
        let decision = decide(&facts(true, DstTag::Elsewhere(other()), false, true));
        assert_eq!(
            decision,
            Decision::TagMove {
                current: other(),
                digest_in_dst: false
            }
        );
        assert!(!decision.writes(), "a tag move must never be written");
        assert_eq!(
            decide(&facts(true, DstTag::Elsewhere(other()), true, true)),
            Decision::TagMove {
                current: other(),
                digest_in_dst: true
            }
        );
    }

    #[test]
    fn promote_1_tag_as_a_rebase() {
        // A rebase only changes the destination path prefix; the table sees a new repo.
        assert_eq!(decide(&facts(true, DstTag::Absent, false, true)), Decision::Copy);
    }

    #[test]
    fn promote_1_digest_tagless_promotion() {
        assert_eq!(decide(&facts(false, DstTag::Absent, false, true)), Decision::Copy);
        assert_eq!(decide(&facts(false, DstTag::Absent, true, true)), Decision::Skip);
        let still_lost = decide(&facts(false, DstTag::Absent, true, false));
        assert_eq!(
            still_lost,
            Decision::SkipStillLost,
            "already promoted but lost in staging: a skip, reported"
        );
        assert!(!still_lost.writes());
    }

    #[test]
    fn nop_src_registry_does_not_have_any_of_the_images_we_want_to_promote() {
        assert_eq!(decide(&facts(true, DstTag::Absent, false, false)), Decision::Lost);
        assert_eq!(decide(&facts(false, DstTag::Absent, false, false)), Decision::Lost);
        // Lost is decided before a tag move is looked at, as in Go.
        assert_eq!(
            decide(&facts(true, DstTag::Elsewhere(other()), false, false)),
            Decision::Lost
        );
    }

    #[test]
    fn add_1_tag_for_2_registries() {
        // Each destination already has the digest under another tag: both only retag.
        for _registry in 0..2 {
            let decision = decide(&facts(true, DstTag::Absent, true, true));
            assert_eq!(decision, Decision::Retag);
            assert!(decision.writes());
        }
    }
}
