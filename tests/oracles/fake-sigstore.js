#!/usr/bin/env node
// A fake Fulcio v2 + Rekor v1 on 127.0.0.1 for kpromo's keyless signing tests. The certificate
// authority, CT log and transparency log are sigstore-js's own mocks (@sigstore/mock); this file
// only serves them over real HTTP and adds what real Fulcio and Rekor do that the mocks do not, so
// that independent verifiers (sigstore-js, sigstore-python, skopeo) accept what it issues exactly
// as they would accept the public-good instance's (docs/decisions/0003-trust-test-oracles.md):
//
// - Fulcio: an email identity (token with an `email` claim, which must be `email_verified`) goes
//   into an rfc822Name SAN, anything else (`sub`) into a URI SAN; the mock writes every subject
//   as a URI, which `subjectEmail` checks (containers/image) never match. The proof of
//   possession (a signature over that same identity) and the token's expiry are checked; the
//   token's signature is not (there is no OIDC provider to fetch keys from).
// - Rekor: entries are canonicalised as Rekor stores them (dsse entries become envelopeHash,
//   payloadHash and signatures; PEM keys and certificates are re-encoded), dsse signatures are
//   verified, an entry already in the log is refused with 409 and its location, and entries can
//   be read back by UUID. hashedrekord signatures are not verified: Node's crypto cannot verify
//   an ECDSA signature over a bare digest, and every verifier re-checks them against the artifact.
//
// Usage: node fake-sigstore.js --dir DIR [--addr 127.0.0.1:0]
// Writes into DIR, before it reports its port: trusted_root.json (sigstore's trusted-root format,
// for sigstore-js and sigstore-python), fulcio_root.pem (the CA, for skopeo's `fulcio.caPath`),
// rekor_pub.pem (for skopeo's `rekorPublicKeyPath`) and ctfe_pub.pem. While serving it appends one
// JSON line per accepted log entry to rekor-entries.jsonl and one per issued certificate to
// fulcio-certificates.jsonl, each written before the answer, so a test counts what a run added.
// Then it prints `fake-sigstore listening on 127.0.0.1:PORT` on stderr.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const net = require('net');
const path = require('path');

// @peculiar/x509 (the mock's certificate library) needs the Reflect metadata polyfill loaded first.
require('reflect-metadata');
const x509 = require('@peculiar/x509');
const { fulcioHandler, initializeCA, initializeCTLog, initializeTLog } = require('@sigstore/mock');
const { TrustedRoot } = require('@sigstore/protobuf-specs');

const FULCIO_SIGNING_CERT = '/api/v2/signingCert';
const REKOR_ENTRIES = '/api/v1/log/entries';
const MAX_BODY = 4 << 20;

// Fulcio puts an email identity in an rfc822Name SAN; the mock's CA always asks for a URI. Its SAN
// extension is looked up on the shared @peculiar/x509 module at every issue, so replacing that one
// constructor corrects the mock without copying its CA.
const UriOnlySan = x509.SubjectAlternativeNameExtension;
x509.SubjectAlternativeNameExtension = class extends UriOnlySan {
  constructor(names, critical) {
    const fulcioNames = Array.isArray(names)
      ? names.map((name) => (name.type === 'url' && isEmail(name.value) ? { type: 'email', value: name.value } : name))
      : names;
    super(fulcioNames, critical);
  }
};

function isEmail(value) {
  return typeof value === 'string' && /^[^@\s:/]+@[^@\s:/]+$/.test(value);
}

class HttpError extends Error {
  constructor(status, message, headers = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

function parseArgs(argv) {
  const args = { addr: '127.0.0.1:0', dir: null };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) usage(`${flag} needs a value`);
    if (flag === '--dir') args.dir = value;
    else if (flag === '--addr') args.addr = value;
    else usage(`unknown flag ${flag}`);
  }
  if (!args.dir) usage('--dir is required');
  const colon = args.addr.lastIndexOf(':');
  const host = args.addr.slice(0, colon);
  const port = Number(args.addr.slice(colon + 1));
  // A test server must never be reachable from outside the machine.
  if (!net.isIP(host) || !(host === '::1' || host.startsWith('127.'))) usage(`--addr ${args.addr}: loopback IP only`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) usage(`--addr ${args.addr}: bad port`);
  return { dir: args.dir, host, port };
}

function usage(problem) {
  process.stderr.write(`fake-sigstore: ${problem}\nusage: fake-sigstore.js --dir DIR [--addr 127.0.0.1:0]\n`);
  process.exit(2);
}

// --- Fulcio -------------------------------------------------------------------------------------

function decodeToken(token) {
  if (typeof token !== 'string') throw new HttpError(400, 'credentials.oidcIdentityToken is missing');
  const parts = token.split('.');
  let claims;
  try {
    claims = JSON.parse(Buffer.from(parts[1] || '', 'base64url').toString('utf8'));
  } catch {
    throw new HttpError(401, 'the identity token is not a JWT');
  }
  if (parts.length !== 3 || claims === null || typeof claims !== 'object') {
    throw new HttpError(401, 'the identity token is not a JWT');
  }
  if (typeof claims.iss !== 'string' || !claims.iss) throw new HttpError(401, 'the identity token has no issuer');
  if (typeof claims.exp === 'number' && claims.exp * 1000 < Date.now()) {
    throw new HttpError(401, 'the identity token has expired');
  }
  return claims;
}

// Fulcio's principal: the email of an email identity (only once the issuer verified it), else the
// subject. The proof of possession is a signature over exactly this string.
function principalOf(claims) {
  if (claims.email !== undefined) {
    if (claims.email_verified !== true) throw new HttpError(400, 'the identity token email is not verified');
    return { name: String(claims.email), claim: 'email' };
  }
  if (typeof claims.sub !== 'string' || !claims.sub) throw new HttpError(401, 'the identity token has no subject');
  return { name: claims.sub, claim: 'sub' };
}

async function checkPossession(request, principal) {
  if (request.publicKeyRequest) {
    const { publicKey, proofOfPossession } = request.publicKeyRequest;
    let key;
    try {
      key = crypto.createPublicKey(publicKey.content);
    } catch (e) {
      throw new HttpError(400, `publicKeyRequest.publicKey is not a PEM public key: ${e.message}`);
    }
    const proof = Buffer.from(proofOfPossession || '', 'base64');
    if (!crypto.verify('sha256', Buffer.from(principal.name), key, proof)) {
      throw new HttpError(400, `the proof of possession is not a signature over the token's ${principal.claim}`);
    }
    return;
  }
  if (request.certificateSigningRequest) {
    let csr;
    try {
      csr = new x509.Pkcs10CertificateRequest(request.certificateSigningRequest);
    } catch (e) {
      throw new HttpError(400, `certificateSigningRequest does not parse: ${e.message}`);
    }
    if (!(await csr.verify())) throw new HttpError(400, 'certificateSigningRequest: its signature does not verify');
    return;
  }
  throw new HttpError(400, 'neither publicKeyRequest nor certificateSigningRequest');
}

function makeFulcio(ca, state) {
  // One mock handler per kind of principal: the mock takes the SAN from a fixed claim.
  const handlers = { email: fulcioHandler(ca, { subjectClaim: 'email' }), sub: fulcioHandler(ca) };
  return async (body) => {
    const request = parseJson(body);
    const claims = decodeToken(request.credentials && request.credentials.oidcIdentityToken);
    const principal = principalOf(claims);
    await checkPossession(request, principal);
    const answer = await handlers[principal.claim].fn(body);
    if (answer.statusCode === 201) {
      appendLine(state.certificatesFile, { subject: principal.name, issuer: claims.iss, time: new Date().toISOString() });
    }
    return answer;
  };
}

// --- Rekor --------------------------------------------------------------------------------------

// Rekor stores keys and certificates re-encoded (Go's PEM encoder, 64 columns); verifiers compare
// the stored text with their own encoding of the bundle's certificate.
function canonicalPem(base64Pem, field) {
  const pem = Buffer.from(base64Pem || '', 'base64').toString('utf8');
  try {
    if (pem.includes('BEGIN CERTIFICATE')) return new crypto.X509Certificate(pem).toString();
    return crypto.createPublicKey(pem).export({ type: 'spki', format: 'pem' });
  } catch (e) {
    throw new HttpError(400, `${field} is not a PEM certificate or public key: ${e.message}`);
  }
}

function verifierKey(pem) {
  return pem.includes('BEGIN CERTIFICATE') ? new crypto.X509Certificate(pem).publicKey : crypto.createPublicKey(pem);
}

const sha256Hex = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex');

function pae(payloadType, payload) {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

function canonicalHashedRekord(entry) {
  const spec = entry.spec || {};
  const hash = (spec.data && spec.data.hash) || {};
  if (hash.algorithm !== 'sha256' || !/^[0-9a-f]{64}$/.test(hash.value || '')) {
    throw new HttpError(400, 'hashedrekord: spec.data.hash must be a sha256 hex digest');
  }
  const signature = spec.signature || {};
  if (!signature.content || Buffer.from(signature.content, 'base64').length === 0) {
    throw new HttpError(400, 'hashedrekord: spec.signature.content is empty');
  }
  const publicKey = canonicalPem(signature.publicKey && signature.publicKey.content, 'spec.signature.publicKey.content');
  return {
    apiVersion: '0.0.1',
    kind: 'hashedrekord',
    spec: {
      data: { hash: { algorithm: 'sha256', value: hash.value } },
      signature: { content: signature.content, publicKey: { content: Buffer.from(publicKey).toString('base64') } },
    },
  };
}

function canonicalDsse(entry) {
  const content = (entry.spec && entry.spec.proposedContent) || {};
  if (typeof content.envelope !== 'string') throw new HttpError(400, 'dsse: spec.proposedContent.envelope is missing');
  const envelope = parseJson(content.envelope, 'dsse: the envelope');
  const payload = Buffer.from(envelope.payload || '', 'base64');
  const verifiers = (content.verifiers || []).map((v, i) => canonicalPem(v, `dsse: verifiers[${i}]`));
  if (!Array.isArray(envelope.signatures) || envelope.signatures.length === 0 || verifiers.length === 0) {
    throw new HttpError(400, 'dsse: an envelope needs signatures and verifiers');
  }
  const message = pae(String(envelope.payloadType || ''), payload);
  const signatures = envelope.signatures.map((s, i) => {
    const bytes = Buffer.from(s.sig || '', 'base64');
    const verifier = verifiers.find((pem) => crypto.verify('sha256', message, verifierKey(pem), bytes));
    if (!verifier) throw new HttpError(400, `dsse: signatures[${i}] does not verify with any verifier`);
    return { signature: s.sig, verifier: Buffer.from(verifier).toString('base64') };
  });
  return {
    apiVersion: '0.0.1',
    kind: 'dsse',
    spec: {
      envelopeHash: { algorithm: 'sha256', value: sha256Hex(Buffer.from(content.envelope, 'utf8')) },
      payloadHash: { algorithm: 'sha256', value: sha256Hex(payload) },
      signatures,
    },
  };
}

function makeRekor(tlog, state) {
  const canonicalisers = { hashedrekord: canonicalHashedRekord, dsse: canonicalDsse };
  const create = async (body) => {
    const proposed = parseJson(body);
    const canonicalise = canonicalisers[proposed.kind];
    if (!canonicalise) throw new HttpError(400, `entry kind ${JSON.stringify(proposed.kind)}: this fake Rekor accepts hashedrekord and dsse`);
    const canonical = canonicalise(proposed);
    // What Rekor deduplicates on: the canonical body (the mock canonicalises the JSON the same way).
    const key = sha256Hex(Buffer.from(JSON.stringify(sortKeys(canonical))));
    const existing = state.uuidsByBody.get(key);
    if (existing) {
      throw new HttpError(409, `an equivalent entry already exists in the transparency log with UUID ${existing}`, {
        Location: `${REKOR_ENTRIES}/${existing}`,
      });
    }
    const logged = await tlog.log(canonical);
    const [uuid] = Object.keys(logged);
    state.uuidsByBody.set(key, uuid);
    state.entries.set(uuid, logged);
    appendLine(state.entriesFile, { uuid, kind: canonical.kind, logIndex: logged[uuid].logIndex, integratedTime: logged[uuid].integratedTime });
    return { statusCode: 201, response: JSON.stringify(logged), contentType: 'application/json', headers: { Location: `${REKOR_ENTRIES}/${uuid}` } };
  };
  const get = async (uuid) => {
    const entry = state.entries.get(uuid);
    if (!entry) throw new HttpError(404, `no entry with UUID ${uuid}`);
    return { statusCode: 200, response: JSON.stringify(entry), contentType: 'application/json' };
  };
  return { create, get };
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys(value[k])]));
  }
  return value;
}

// --- trust material -----------------------------------------------------------------------------

function trustedRoot({ url, caRoot, ctlogKey, rekorKey, since }) {
  const b64 = (bytes) => Buffer.from(bytes).toString('base64');
  const logId = (spki) => b64(crypto.createHash('sha256').update(spki).digest());
  const start = since.toISOString();
  const log = (spki) => ({
    baseUrl: url,
    hashAlgorithm: 'SHA2_256',
    publicKey: { rawBytes: b64(spki), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start } },
    logId: { keyId: logId(spki) },
  });
  const root = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [log(rekorKey)],
    certificateAuthorities: [
      {
        subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
        uri: url,
        certChain: { certificates: [{ rawBytes: b64(caRoot) }] },
        validFor: { start },
      },
    ],
    ctlogs: [log(ctlogKey)],
    timestampAuthorities: [],
  };
  // Through sigstore's own message type, so a field we misspelled fails here, not in a verifier.
  return TrustedRoot.toJSON(TrustedRoot.fromJSON(root));
}

function writeAtomically(file, content) {
  fs.writeFileSync(`${file}.tmp`, content);
  fs.renameSync(`${file}.tmp`, file);
}

function appendLine(file, record) {
  fs.appendFileSync(file, `${JSON.stringify(record)}\n`);
}

// --- HTTP ---------------------------------------------------------------------------------------

function parseJson(text, what = 'the request body') {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `${what} is not JSON: ${e.message}`);
  }
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) reject(new HttpError(413, 'request body too large'));
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function route(fulcio, rekor) {
  return async (req, res) => {
    const { pathname } = new URL(req.url, 'http://fake');
    let answer;
    try {
      const body = await readBody(req);
      if (req.method === 'POST' && pathname === FULCIO_SIGNING_CERT) answer = await fulcio(body);
      else if (req.method === 'POST' && pathname === REKOR_ENTRIES) answer = await rekor.create(body);
      else if (req.method === 'GET' && pathname.startsWith(`${REKOR_ENTRIES}/`)) answer = await rekor.get(pathname.slice(REKOR_ENTRIES.length + 1));
      else throw new HttpError(404, `${req.method} ${pathname}: not served by this fake`);
    } catch (e) {
      const status = e instanceof HttpError ? e.status : 500;
      // Rekor and Fulcio answer errors as {code, message}.
      answer = { statusCode: status, response: JSON.stringify({ code: status, message: e.message }), contentType: 'application/json', headers: e.headers };
    }
    process.stderr.write(`fake-sigstore: ${req.method} ${pathname} -> ${answer.statusCode}\n`);
    res.writeHead(answer.statusCode, { 'Content-Type': answer.contentType || 'text/plain', ...(answer.headers || {}) });
    res.end(answer.response);
  };
}

async function main() {
  const { dir, host, port } = parseArgs(process.argv.slice(2));
  fs.mkdirSync(dir, { recursive: true });
  const state = {
    entries: new Map(),
    uuidsByBody: new Map(),
    entriesFile: path.join(dir, 'rekor-entries.jsonl'),
    certificatesFile: path.join(dir, 'fulcio-certificates.jsonl'),
  };
  fs.writeFileSync(state.entriesFile, '');
  fs.writeFileSync(state.certificatesFile, '');

  // Bound first: the mocks' log identity and the trusted root name the real URL. Nobody knows the
  // port before the "listening" line, so no request arrives before the handlers exist.
  let handle = null;
  const server = http.createServer((req, res) => handle(req, res));
  await new Promise((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
  const bound = server.address();
  const url = `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;

  // Validity starts a minute back: certificates are issued within the same second as the root.
  const since = new Date(Date.now() - 60_000);
  const newKey = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const [caKeys, ctKeys, rekorKeys] = [newKey(), newKey(), newKey()];
  const ca = await initializeCA(caKeys, await initializeCTLog(ctKeys));
  const tlog = await initializeTLog(url, rekorKeys);
  handle = route(makeFulcio(ca, state), makeRekor(tlog, state));

  const spki = (keys) => keys.publicKey.export({ type: 'spki', format: 'der' });
  const caPem = new crypto.X509Certificate(ca.rootCertificate).toString();
  writeAtomically(path.join(dir, 'fulcio_root.pem'), caPem);
  writeAtomically(path.join(dir, 'rekor_pub.pem'), rekorKeys.publicKey.export({ type: 'spki', format: 'pem' }));
  writeAtomically(path.join(dir, 'ctfe_pub.pem'), ctKeys.publicKey.export({ type: 'spki', format: 'pem' }));
  const root = trustedRoot({ url, caRoot: ca.rootCertificate, ctlogKey: spki(ctKeys), rekorKey: spki(rekorKeys), since });
  writeAtomically(path.join(dir, 'trusted_root.json'), `${JSON.stringify(root, null, 2)}\n`);

  // The harness waits for this exact line.
  process.stderr.write(`fake-sigstore listening on ${bound.address}:${bound.port}\n`);
}

main().catch((e) => {
  process.stderr.write(`fake-sigstore: ${e.stack || e}\n`);
  process.exit(1);
});
