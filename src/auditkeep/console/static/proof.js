// The proof checks of the event page, with WebCrypto and nothing the server computed: the
// leaf hash is recomputed from the leaf bytes (RFC 9162: SHA-256(0x00 || leaf)), the root
// from the audit path, and the checkpoint's Ed25519 signature (C2SP signed note).
"use strict";

const enc = new TextEncoder();

export class Failure extends Error {}

function b64(text) {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function unhex(text) {
  if (!/^([0-9a-f]{2})*$/.test(text)) throw new Failure("a proof hash is not hex");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export const leafHash = (leaf) => sha256(concat(new Uint8Array([0]), leaf));
const nodeHash = (l, r) => sha256(concat(new Uint8Array([1]), l, r));

// RFC 9162 section 2.1.3.2; numbers as doubles (exact below 2^53), never 32-bit bit operations.
export async function rootFromInclusion(index, size, leaf, path) {
  if (index >= size) throw new Failure(`index ${index} is not in a tree of size ${size}`);
  let fn = index, sn = size - 1, r = leaf;
  for (const p of path) {
    if (sn === 0) throw new Failure("the audit path is longer than the tree allows");
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Failure("the audit path is shorter than the tree needs");
  return r;
}

// A verifier key: name+hexid+base64(0x01 || 32-byte Ed25519 key).
export async function parseKey(vkey) {
  // the base64 key may itself hold '+': split at the first two only
  const text = vkey.trim();
  const a = text.indexOf("+"), b = text.indexOf("+", a + 1);
  if (a < 1 || b < 0) throw new Failure("the verifier key is not name+id+key");
  const name = text.slice(0, a), id = text.slice(a + 1, b), key = text.slice(b + 1);
  let raw;
  try { raw = b64(key); } catch { throw new Failure("the verifier key is not base64"); }
  if (raw.length !== 33 || raw[0] !== 1) throw new Failure("the verifier key is not an Ed25519 key");
  const pub = raw.slice(1);
  if (hex(await keyId(name, pub)) !== id) throw new Failure("the verifier key's id does not match its name and key");
  return { name, pub };
}

async function keyId(name, pub) {
  return (await sha256(concat(enc.encode(name + "\n"), new Uint8Array([1]), pub))).slice(0, 4);
}

// A checkpoint note: origin, size, base64 root, extensions; a blank line; signature lines.
export function parseNote(note) {
  const split = note.indexOf("\n\n");
  if (split < 0 || !note.endsWith("\n")) throw new Failure("the checkpoint is not a signed note");
  const text = note.slice(0, split + 1);
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3 || !/^[0-9]+$/.test(lines[1])) throw new Failure("the checkpoint body is malformed");
  const sigs = note.slice(split + 2, -1).split("\n").map((line) => {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m) throw new Failure("a checkpoint signature line is malformed");
    const raw = b64(m[2]);
    return { name: m[1], id: raw.slice(0, 4), sig: raw.slice(4) };
  });
  return { text, origin: lines[0], size: Number(lines[1]), root: b64(lines[2]), sigs };
}

async function checkSignature(cp, pub) {
  // the key as the checkpoint names it: the tenant's origin (the log-wide key's public bytes)
  const id = await keyId(cp.origin, pub);
  const line = cp.sigs.find((s) => s.name === cp.origin && equal(s.id, id));
  if (!line) throw new Failure("no signature on the checkpoint is by the verifier key");
  if (line.sig.length !== 64) throw new Failure("the checkpoint signature is not an Ed25519 signature");
  const key = await crypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
  if (!(await crypto.subtle.verify({ name: "Ed25519" }, key, line.sig, enc.encode(cp.text)))) {
    throw new Failure("the checkpoint signature does not verify with the verifier key");
  }
}

export async function verify(data, vkey) {
  if (data.unavailable) throw new Failure(data.unavailable);
  const leaf = b64(data.leaf);
  const lh = await leafHash(leaf);
  const path = data.hashes.map(unhex);
  const root = await rootFromInclusion(data.index, data.tree_size, lh, path);
  const cp = parseNote(data.checkpoint);
  if (cp.origin !== data.origin) throw new Failure(`the checkpoint is of another log (${cp.origin})`);
  if (cp.size !== data.tree_size) throw new Failure("the proof and the checkpoint are of different tree sizes");
  const { pub } = await parseKey(vkey);
  await checkSignature(cp, pub);
  if (!equal(root, cp.root)) {
    throw new Failure("the event's leaf does not lead to the signed root: the stored event or the log was altered");
  }
  return { leafHash: hex(lh), treeSize: cp.size };
}

