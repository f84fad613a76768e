/**
 * Web origins, as the WebSocket listener's `allowedOrigins` and the
 * `Origin` header of upgrades name them. A leaf module: the options check
 * and the WebSocket transport both use it without importing each other.
 *
 * @module
 */
/**
 * An origin in its canonical form (`scheme://host[:port]`, lower case, the
 * default port left out), or undefined when it is not a plain http(s)
 * origin (`null`, a path, user info, garbage). Used for
 * `allowedOrigins` and the `Origin` header of WebSocket upgrades.
 *
 * @param text - an origin as written (`https://Example.com:443`)
 * @returns the canonical origin (`https://example.com`), or undefined
 */
export function normalizeOrigin(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  const rest = text.slice(url.protocol.length + 2).replace(/\/$/, '');
  if (url.username !== '' || url.password !== '' || url.pathname !== '/' || /[/\\?#@]/.test(rest)) return undefined;
  return url.origin;
}
