#!/usr/bin/env python3
"""Generates the world for scripts/bench-plan-remote.sh: registry storage plus a
thin-manifest tree shaped like the real registry.k8s.io tree.

Shape: every project and image of testdata/registry.k8s.io keeps its real name and
tag lists; each image keeps every FRACTION-th of its digests (at least one), and each
kept digest becomes a tiny unique OCI image (own config, one layer shared by all).
Every promoter manifest names the staging registry plus REGIONS destinations
`127.0.0.1:<host port>/regionNN/images/<project>`, spread round-robin over the region
hosts. The first PROMOTED regions already hold every image except every 20th kept
digest (new releases to copy); the other regions are empty (new regions).

Storage is written straight into CNCF distribution 2.x's filesystem layout (the
registries must be stopped). Link files hold only `sha256:<hex>`, so each distinct
one is written once per host and hard-linked everywhere it is needed: the regions
cost directory entries, not a page per link, which keeps /dev/shm small. Nothing
rewrites these links in a plan or dry run (a tag move, the only rewrite with other
content, is refused by kpromo).

Prints one JSON line of counts. Python 3 stdlib only.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import re
import sys
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
NEW_EVERY = 20  # every NEW_EVERY-th kept digest is missing from promoted regions


def sha(data):
    return hashlib.sha256(data).hexdigest()


def parse_images(path):
    """images.yaml of the promoter format: `- name:`, `dmap:`, `"sha256:…": [tags]`,
    also the block-list form of tags. Returns [(name, [[tags] per digest])]."""
    images, tags = [], None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\r\n").split("#", 1)[0].rstrip()
            m = re.match(r"^- name:\s*(\S+)$", line)
            if m:
                images.append((m.group(1), []))
                continue
            m = re.match(r'^\s+"?sha256:[0-9a-f]+"?:\s*(.*)$', line)
            if m and images:
                rest = m.group(1).strip()
                tags = re.findall(r'"([^"]*)"|([^,\[\]\s"]+)', rest)
                tags = [a or b for a, b in tags]
                images[-1][1].append(tags)
                continue
            m = re.match(r"^\s+-\s+\"?([^\"\s]+)\"?$", line)
            if m and images and images[-1][1]:
                images[-1][1][-1].append(m.group(1))
    return [(n, d) for n, d in images if d]


class Host:
    """One registry's filesystem storage."""

    def __init__(self, root):
        self.v2 = os.path.join(root, "docker", "registry", "v2")
        self.pool = os.path.join(root, "linkpool")
        os.makedirs(self.pool, exist_ok=True)
        self.blobs = set()

    def blob(self, hexd, data):
        if hexd in self.blobs:
            return
        self.blobs.add(hexd)
        d = os.path.join(self.v2, "blobs", "sha256", hexd[:2], hexd)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "data"), "wb") as f:
            f.write(data)

    def link(self, path, hexd):
        src = os.path.join(self.pool, hexd)
        if not os.path.exists(src):
            with open(src, "wb") as f:
                f.write(b"sha256:" + hexd.encode())
        if os.path.exists(path):  # the shared layer, once per repository
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.link(src, path)

    def image(self, repo, blobs, manifest, tags):
        """blobs: [(hex, data)] of the config and layer; manifest: (hex, data)."""
        r = os.path.join(self.v2, "repositories", repo)
        manifest_hex = manifest[0]
        self.blob(*manifest)
        for hexd, data in blobs:
            self.blob(hexd, data)
            self.link(os.path.join(r, "_layers", "sha256", hexd, "link"), hexd)
        self.link(os.path.join(r, "_manifests", "revisions", "sha256", manifest_hex, "link"), manifest_hex)
        for t in tags:
            td = os.path.join(r, "_manifests", "tags", t)
            self.link(os.path.join(td, "current", "link"), manifest_hex)
            self.link(os.path.join(td, "index", "sha256", manifest_hex, "link"), manifest_hex)


def shared_layer():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        body = b"kpromo plan benchmark\n"
        info = tarfile.TarInfo("bench.txt")
        info.size, info.mtime = len(body), 0
        tar.addfile(info, io.BytesIO(body))
    raw = buf.getvalue()
    return raw, gzip.compress(raw, mtime=0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", required=True, help="real thin-manifest tree (testdata/registry.k8s.io)")
    ap.add_argument("--out", required=True, help="directory for the generated manifest tree")
    ap.add_argument("--staging", required=True, help="ROOT:PORT of the staging registry storage")
    ap.add_argument("--region-host", action="append", required=True, help="ROOT:PORT, repeatable")
    ap.add_argument("--fraction", type=int, default=20, help="keep every N-th digest of each image")
    ap.add_argument("--regions", type=int, default=20)
    ap.add_argument("--promoted", type=int, default=12, help="regions already holding the images")
    a = ap.parse_args()

    def host_arg(s):
        root, _, port = s.rpartition(":")
        return Host(root), port

    staging, staging_port = host_arg(a.staging)
    hosts = [host_arg(h) for h in a.region_host]
    regions = [(f"region{r:02d}", hosts[r % len(hosts)]) for r in range(a.regions)]
    raw_layer, layer = shared_layer()
    layer_hex, diff_id = sha(layer), "sha256:" + sha(raw_layer)

    stats = {"projects": 0, "images": 0, "digests": 0, "tags": 0, "tagless": 0,
             "new_digests": 0, "regions": a.regions, "promoted_regions": a.promoted,
             "region_hosts": len(hosts)}
    images_dir = os.path.join(a.tree, "images")
    for project in sorted(os.listdir(images_dir)):
        path = os.path.join(images_dir, project, "images.yaml")
        if not os.path.isfile(path):
            continue
        images = parse_images(path)
        if not images:
            continue
        stats["projects"] += 1
        md = os.path.join(a.out, "manifests", project)
        os.makedirs(md, exist_ok=True)
        with open(os.path.join(md, "promoter-manifest.yaml"), "w") as f:
            f.write("# generated by scripts/gen-plan-world.py\nregistries:\n")
            f.write(f"- name: 127.0.0.1:{staging_port}/{project}\n  src: true\n")
            for name, (_, port) in regions:
                f.write(f"- name: 127.0.0.1:{port}/{name}/images/{project}\n")
        idir = os.path.join(a.out, "images", project)
        os.makedirs(idir, exist_ok=True)
        with open(os.path.join(idir, "images.yaml"), "w") as out:
            for name, dmap in images:
                stats["images"] += 1
                out.write(f"- name: {name}\n  dmap:\n")
                for i, tags in enumerate(dmap):
                    if i % a.fraction:
                        continue
                    tags = sorted(set(tags))
                    config = json.dumps({
                        "architecture": "amd64", "os": "linux",
                        "config": {"Labels": {"kpromo.bench": f"{project}/{name}#{stats['digests']}"}},
                        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                    }, sort_keys=True, separators=(",", ":")).encode()
                    config_hex = sha(config)
                    manifest = json.dumps({
                        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "config": {"mediaType": OCI_CONFIG, "digest": "sha256:" + config_hex, "size": len(config)},
                        "layers": [{"mediaType": OCI_LAYER, "digest": "sha256:" + layer_hex, "size": len(layer)}],
                    }, sort_keys=True, separators=(",", ":")).encode()
                    manifest_hex = sha(manifest)
                    blobs = [(config_hex, config), (layer_hex, layer)]
                    staging.image(f"{project}/{name}", blobs, (manifest_hex, manifest), tags)
                    new = stats["digests"] % NEW_EVERY == NEW_EVERY - 1
                    stats["digests"] += 1
                    stats["tags"] += len(tags)
                    stats["tagless"] += not tags
                    stats["new_digests"] += new
                    if not new:
                        for region, (host, _) in regions[: a.promoted]:
                            host.image(f"{region}/images/{project}/{name}", blobs, (manifest_hex, manifest), tags)
                    quoted = ", ".join(json.dumps(t) for t in tags)
                    out.write(f'    "sha256:{manifest_hex}": [{quoted}]\n')
    json.dump(stats, sys.stdout)
    print()


if __name__ == "__main__":
    main()
