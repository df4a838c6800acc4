"""Python's sigstore and in-toto libraries as independent oracles for kpromo's tests.

Run with the venv that scripts/trust-tools.sh installs, through tests/support/verifiers.rs:

  schema    --bundle FILE
      sigstore-models' Bundle: the strict schema of a sigstore bundle's JSON (pydantic,
      extra=forbid): the v0.1-v0.3 media types only, tlogEntries present, standard padded
      base64. No cryptography.
  dsse      --envelope FILE --key PUB.pem [--keyid ID]
      securesystemslib's DSSE verification (threshold 1) of a bare envelope or of a bundle's
      dsseEnvelope. securesystemslib only tries keys whose keyid equals a signature's keyid, so
      every signature must carry a `keyid` ("" is allowed); the key takes the first signature's
      keyid, or ID when given, which then must match.
  statement --envelope FILE [--subject-digest sha256:HEX]
      in-toto-attestation's Statement.validate() of the envelope's payload, parsed strictly
      (unknown fields refused) after checking the payload type is application/vnd.in-toto+json;
      with --subject-digest, one subject must carry that digest.
  keyless   --bundle FILE [--artifact FILE] --trusted-root FILE --identity SAN --issuer URL
      sigstore-python's Verifier over the given trusted root: certificate chain, SCT, the log
      entry's inclusion promise and body, signature, and the identity policy. A DSSE bundle is
      verified as such, a message-signature bundle against --artifact.

Prints `OK <library>: ...` and exits 0, or prints `FAIL <library>: <error>` on stderr and exits 1;
bad usage or an unreadable file exits 2.
"""

import argparse
import base64
import hashlib
import json
import sys

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


class Unusable(Exception):
    """Bad usage or unreadable input: a fault of the caller, not a verdict."""


class Refused(Exception):
    """The library under its own name refused the input."""

    def __init__(self, library, error):
        super().__init__(f"{library}: {type(error).__name__}: {error}")


def read_bytes(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise Unusable(f"cannot read the {what} {path}: {e}") from e


def read_json(path, what):
    try:
        return json.loads(read_bytes(path, what))
    except ValueError as e:
        raise Unusable(f"the {what} {path} is not JSON: {e}") from e


def envelope_of(document):
    """A bare DSSE envelope, or the one inside a sigstore bundle."""
    if isinstance(document, dict) and "dsseEnvelope" in document:
        return document["dsseEnvelope"]
    return document


def check_schema(args):
    from sigstore_models.bundle.v1 import Bundle

    raw = read_bytes(args.bundle, "bundle")
    try:
        bundle = Bundle.from_json(raw)
    except Exception as e:  # pydantic's ValidationError, or a JSON error
        raise Refused("sigstore-models", e) from e
    return f"sigstore-models: schema of {bundle.media_type}"


def check_dsse(args):
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey

    envelope = envelope_of(read_json(args.envelope, "envelope"))
    try:
        public_key = load_pem_public_key(read_bytes(args.key, "public key"))
    except ValueError as e:
        raise Unusable(f"{args.key} is not a PEM public key: {e}") from e
    try:
        signatures = envelope.get("signatures") or []
        if args.keyid is not None:
            keyid = args.keyid
        elif signatures and "keyid" in signatures[0]:
            keyid = signatures[0]["keyid"]
        else:
            raise KeyError("the first signature has no keyid")
        # from_crypto replaces an empty keyid with a computed one, which then matches no
        # signature: the key is rebuilt around the keyid the signature carries.
        template = SSlibKey.from_crypto(public_key, keyid="template")
        key = SSlibKey(keyid, template.keytype, template.scheme, template.keyval)
        accepted = Envelope.from_dict(envelope).verify([key], 1)
    except Exception as e:
        raise Refused("securesystemslib", e) from e
    return f"securesystemslib: DSSE {envelope.get('payloadType')} signed by keyid {list(accepted)!r}"


def check_statement(args):
    from google.protobuf import json_format
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    envelope = envelope_of(read_json(args.envelope, "envelope"))
    try:
        if envelope.get("payloadType") != IN_TOTO_PAYLOAD_TYPE:
            raise ValueError(f"payloadType {envelope.get('payloadType')!r} is not {IN_TOTO_PAYLOAD_TYPE}")
        payload = base64.b64decode(envelope.get("payload", ""), validate=True)
        proto = json_format.Parse(payload, statement_pb2.Statement())
        statement = Statement.copy_from_pb(proto)
        statement.validate()
        digests = [f"{alg}:{value}" for subject in proto.subject for alg, value in subject.digest.items()]
        if args.subject_digest and args.subject_digest not in digests:
            raise ValueError(f"no subject has digest {args.subject_digest}; subjects: {digests}")
    except Exception as e:
        raise Refused("in-toto-attestation", e) from e
    return f"in-toto-attestation: Statement predicateType={proto.predicate_type} subjects={digests}"


def with_proto3_defaults(document):
    """Writes out the proto3 defaults sigstore-js leaves out and sigstore-models requires.

    Protobuf's JSON mapping omits zero values, so a first-entry inclusion proof (logIndex 0, no
    hashes) comes out of sigstore-js (and of any protojson encoder) without those fields.
    """
    for entry in document.get("verificationMaterial", {}).get("tlogEntries", []):
        proof = entry.get("inclusionProof")
        if proof is not None:
            proof.setdefault("logIndex", "0")
            proof.setdefault("hashes", [])
    return document


def check_keyless(args):
    from sigstore.models import Bundle, TrustedRoot
    from sigstore.verify import Verifier
    from sigstore.verify.policy import Identity

    document = with_proto3_defaults(read_json(args.bundle, "bundle"))
    artifact = read_bytes(args.artifact, "artifact") if args.artifact else None
    try:
        bundle = Bundle.from_json(json.dumps(document))
        verifier = Verifier(trusted_root=TrustedRoot.from_file(args.trusted_root))
        policy = Identity(identity=args.identity, issuer=args.issuer)
        if "dsseEnvelope" in document:
            payload_type, _ = verifier.verify_dsse(bundle, policy)
            what = f"DSSE {payload_type}"
        elif artifact is not None:
            verifier.verify_artifact(artifact, bundle, policy)
            what = f"message signature over sha256:{hashlib.sha256(artifact).hexdigest()}"
        else:
            raise ValueError("a message-signature bundle needs --artifact")
    except Exception as e:
        raise Refused("sigstore-python", e) from e
    return f"sigstore-python: {what} signer={args.identity} issuer={args.issuer}"


def main():
    parser = argparse.ArgumentParser(prog="verify.py")
    commands = parser.add_subparsers(dest="command", required=True)
    schema = commands.add_parser("schema")
    schema.add_argument("--bundle", required=True)
    schema.set_defaults(check=check_schema)
    dsse = commands.add_parser("dsse")
    dsse.add_argument("--envelope", required=True)
    dsse.add_argument("--key", required=True)
    dsse.add_argument("--keyid")
    dsse.set_defaults(check=check_dsse)
    statement = commands.add_parser("statement")
    statement.add_argument("--envelope", required=True)
    statement.add_argument("--subject-digest")
    statement.set_defaults(check=check_statement)
    keyless = commands.add_parser("keyless")
    keyless.add_argument("--bundle", required=True)
    keyless.add_argument("--artifact")
    keyless.add_argument("--trusted-root", required=True)
    keyless.add_argument("--identity", required=True)
    keyless.add_argument("--issuer", required=True)
    keyless.set_defaults(check=check_keyless)
    args = parser.parse_args()
    try:
        print(f"OK {args.check(args)}")
    except Refused as e:
        print(f"FAIL {e}", file=sys.stderr)
        sys.exit(1)
    except Unusable as e:
        print(f"verify.py: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
