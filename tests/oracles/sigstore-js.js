#!/usr/bin/env node
// sigstore-js (the npm project's own verifier and signer) as an independent oracle for kpromo's
// tests. Run through tests/support/verifiers.rs, with NODE_PATH pointing at the private
// node_modules that scripts/trust-tools.sh installs.
//
//   verify --bundle FILE [--artifact FILE] --key PUB.pem [--trusted-root FILE]
//   verify --bundle FILE [--artifact FILE] --trusted-root FILE --identity SAN --issuer URL
//       Verifies a sigstore bundle (DSSE envelope or message signature) with @sigstore/verify's
//       low-level Verifier: the high-level `sigstore.verify` always refreshes TUF metadata
//       first, which cannot work offline. With a bare key and no trusted root every threshold
//       is 0 (no log entry, SCT or timestamp is required, and none may be present); with a
//       trusted root one log entry and one timestamp are required, and one SCT for a
//       certificate. A message-signature bundle needs --artifact.
//   sign --fulcio URL --rekor URL --token FILE --in FILE --out FILE [--payload-type TYPE]
//       Signs keylessly against a Fulcio/Rekor (the fake one in tests) with @sigstore/sign: a
//       DSSE bundle of the file's bytes with --payload-type, else a message-signature bundle.
//       Artifacts made this way are independent of kpromo's signing code.
//
// Exit status: 0 verified or signed (one line on stdout), 1 refused (the library's own message on
// stderr), 2 bad usage or unreadable input.
'use strict';

const crypto = require('crypto');
const fs = require('fs');

const { bundleFromJSON, bundleToJSON } = require('@sigstore/bundle');
const { TrustedRoot } = require('@sigstore/protobuf-specs');
const { DSSEBundleBuilder, FulcioSigner, MessageSignatureBundleBuilder, RekorWitness } = require('@sigstore/sign');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

class UsageError extends Error {}

function parseFlags(argv, known) {
  const flags = {};
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '');
    if (!known.includes(name) || argv[i + 1] === undefined) throw new UsageError(`unexpected argument ${argv[i]}`);
    flags[name] = argv[i + 1];
  }
  return flags;
}

function read(file, what) {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new UsageError(`cannot read the ${what} ${file}: ${e.message}`);
  }
}

function readJson(file, what) {
  try {
    return JSON.parse(read(file, what).toString('utf8'));
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`the ${what} ${file} is not JSON: ${e.message}`);
  }
}

const EMPTY_ROOT = { certificateAuthorities: [], timestampAuthorities: [], tlogs: [], ctlogs: [] };

function verify(argv) {
  const flags = parseFlags(argv, ['bundle', 'artifact', 'key', 'trusted-root', 'identity', 'issuer']);
  if (!flags.bundle) throw new UsageError('verify needs --bundle');
  if (!flags.key && !(flags['trusted-root'] && flags.identity && flags.issuer)) {
    throw new UsageError('verify needs --key, or --trusted-root with --identity and --issuer');
  }
  const json = readJson(flags.bundle, 'bundle');
  const artifact = flags.artifact ? read(flags.artifact, 'artifact') : undefined;
  const root = flags['trusted-root'] ? TrustedRoot.fromJSON(readJson(flags['trusted-root'], 'trusted root')) : EMPTY_ROOT;
  // The PEM goes in as a string: given a Buffer, @sigstore/core reads DER.
  const key = flags.key ? crypto.createPublicKey(read(flags.key, 'public key').toString('utf8')) : null;
  // Any hint selects the key: sigstore-js does not compare the hint (securesystemslib does).
  const keyFinder = () => {
    if (!key) throw new Error('the bundle names a public key, and no --key was given');
    return { publicKey: key, validFor: () => true };
  };
  const thresholds = flags['trusted-root']
    ? { tlogThreshold: 1, ctlogThreshold: 1, timestampThreshold: 1 }
    : { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 };
  const policy = flags.identity ? { subjectAlternativeName: flags.identity, extensions: { issuer: flags.issuer } } : undefined;

  // Everything below is the library's verdict: its errors are refusals (exit 1).
  try {
    const bundle = bundleFromJSON(json);
    const verifier = new Verifier(toTrustMaterial(root, keyFinder), thresholds);
    const signer = verifier.verify(toSignedEntity(bundle, artifact), policy);
    const content = bundle.content.$case === 'dsseEnvelope' ? describeDsse(bundle.content.dsseEnvelope) : 'message signature';
    const who = signer.identity ? ` signer=${signer.identity.subjectAlternativeName} issuer=${signer.identity.extensions.issuer}` : '';
    process.stdout.write(`OK sigstore-js: ${content}${who}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`${e.name}${e.code ? ` [${e.code}]` : ''}: ${e.message}${e.fields ? ` ${JSON.stringify(e.fields)}` : ''}\n`);
    return 1;
  }
}

function describeDsse(envelope) {
  let predicate = '';
  try {
    predicate = ` predicateType=${JSON.parse(envelope.payload.toString('utf8')).predicateType}`;
  } catch {
    // Not an in-toto statement: the payload type says what it is.
  }
  return `DSSE ${envelope.payloadType}${predicate}`;
}

async function sign(argv) {
  const flags = parseFlags(argv, ['fulcio', 'rekor', 'token', 'in', 'out', 'payload-type']);
  for (const needed of ['fulcio', 'rekor', 'token', 'in', 'out']) {
    if (!flags[needed]) throw new UsageError(`sign needs --${needed}`);
  }
  const token = read(flags.token, 'identity token').toString('utf8').trim();
  const data = read(flags.in, 'input');
  const signer = new FulcioSigner({ fulcioBaseURL: flags.fulcio, identityProvider: { getToken: async () => token } });
  const witnesses = [new RekorWitness({ rekorBaseURL: flags.rekor, entryType: 'dsse', fetchOnConflict: true })];
  const builder = flags['payload-type']
    ? new DSSEBundleBuilder({ signer, witnesses })
    : new MessageSignatureBundleBuilder({ signer, witnesses });
  try {
    const bundle = await builder.create({ data, type: flags['payload-type'] });
    fs.writeFileSync(flags.out, `${JSON.stringify(bundleToJSON(bundle), null, 2)}\n`);
    process.stdout.write(`OK sigstore-js: signed ${flags.in} into ${flags.out}\n`);
    return 0;
  } catch (e) {
    const cause = e.cause ? ` (${e.cause.message || e.cause})` : '';
    process.stderr.write(`${e.name}${e.code ? ` [${e.code}]` : ''}: ${e.message}${cause}\n`);
    return 1;
  }
}

async function main() {
  const [command, ...argv] = process.argv.slice(2);
  try {
    if (command === 'verify') return verify(argv);
    if (command === 'sign') return await sign(argv);
    throw new UsageError(`unknown command ${command}: verify or sign`);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`sigstore-js.js: ${e.message}\n`);
    return 2;
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`sigstore-js.js: ${e.stack || e}\n`);
    process.exit(2);
  },
);
