/**
 * The SSH listener's keys: its host key (made on first start, kept in a
 * file after) and the authorized keys a listener may require.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { ImiError } from '@imi/core';
import ssh2 from 'ssh2';

/** A public key users may log in with, from an authorized-keys file. */
export interface AuthorizedKey {
  /** The key's algorithm (`ssh-ed25519`, `rsa-sha2-256`, …). */
  readonly type: string;
  /** The key in SSH wire format, as clients offer it. */
  readonly blob: Buffer;
  /** Checks a signature made with the key. */
  verify(data: Buffer, signature: Buffer, hashAlgo?: string): boolean;
}

/**
 * A new Ed25519 private key in OpenSSH's format. ssh2 (1.17) writes about 3
 * in 1,000 of its own generated keys in a form its parser then rejects
 * ("Malformed OpenSSH private key"), so a key is only kept once it parses.
 */
function generateHostKey(): string {
  for (let attempt = 0; ; attempt++) {
    const text = ssh2.utils.generateKeyPairSync('ed25519').private;
    const parsed = ssh2.utils.parseKey(text);
    if (!(parsed instanceof Error) || attempt >= 20) return text;
  }
}

/**
 * Reads the host key from `path`, or makes an Ed25519 one and writes it
 * there (mode 0600, never over an existing file), so clients see the same
 * host key after a restart.
 *
 * @returns the private key (OpenSSH PEM)
 * @throws ImiError `IMI_CONFIG` when the file can neither be read nor written, or holds no key
 */
export function loadHostKey(path: string): string {
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new ImiError('IMI_CONFIG', `cannot read the SSH host key file ${path}: ${(error as Error).message}`, { cause: error });
  }
  if (text === undefined) {
    text = generateHostKey();
    try {
      writeFileSync(path, text, { mode: 0o600, flag: 'wx' });
    } catch (error) {
      throw new ImiError('IMI_CONFIG', `cannot write the SSH host key file ${path} (the listener makes one on first start): ${(error as Error).message}`, { cause: error });
    }
  }
  const parsed = ssh2.utils.parseKey(text);
  if (parsed instanceof Error || Array.isArray(parsed) || !parsed.isPrivateKey()) {
    throw new ImiError('IMI_CONFIG', `the SSH host key file ${path} holds no private key${parsed instanceof Error ? `: ${parsed.message}` : ''}`);
  }
  return text;
}

/**
 * Reads an authorized-keys file (OpenSSH's format: one key a line, `#`
 * comments; options before the key are not supported).
 *
 * @throws ImiError `IMI_CONFIG` when it cannot be read or a line is not a public key
 */
export function loadAuthorizedKeys(path: string): AuthorizedKey[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ImiError('IMI_CONFIG', `cannot read the SSH authorized keys file ${path}: ${(error as Error).message}`, { cause: error });
  }
  const keys: AuthorizedKey[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const parsed = ssh2.utils.parseKey(line);
    if (parsed instanceof Error || Array.isArray(parsed)) throw new ImiError('IMI_CONFIG', `${path} line ${index + 1} is not a public key${parsed instanceof Error ? `: ${parsed.message}` : ''}`);
    keys.push({ type: parsed.type, blob: parsed.getPublicSSH(), verify: (data, signature, hashAlgo) => parsed.verify(data, signature, hashAlgo as never) === true });
  });
  return keys;
}

/** A key's fingerprint as `ssh-keygen -l` prints it: `SHA256:` and the unpadded base64 of its blob's SHA-256. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}
