// The dashboard's only way to the daemon: the public /v1 HTTP API, relative to the page so that
// the dashboard also works behind a reverse proxy that serves the daemon under a path prefix.
// The token lives in sessionStorage only (it dies with the tab, never written to disk by us).

const TOKEN_KEY = 'readyd.token';

/** An API failure: `status` is the HTTP status (0 when the daemon could not be reached). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage disabled (private mode policies): the token then lasts until the page reloads.
  }
  memoryToken = token || '';
}

// Fallback when sessionStorage is unavailable.
let memoryToken = '';

function currentToken() {
  return getToken() || memoryToken;
}

/**
 * Call the API. `path` is relative to /v1 ("entities/payments-api"). Resolves with the parsed JSON
 * body (or null for an empty body); rejects with an ApiError carrying the server's message.
 */
export async function request(method, path, body, options = {}) {
  const headers = { Accept: 'application/json' };
  const token = options.token ?? currentToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`v1/${path}`, { method, headers, body: payload, cache: 'no-store' });
  } catch (err) {
    throw new ApiError(0, 'unreachable', `The daemon could not be reached (${err.message}).`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      if (response.ok) throw new ApiError(response.status, 'bad_json', `The daemon answered ${path} with something that is not JSON.`);
    }
  }
  if (!response.ok) {
    const err = data && data.error;
    const message = err && err.message ? err.message : `${response.status} ${response.statusText || 'error'}`.trim();
    throw new ApiError(response.status, (err && err.code) || 'http_error', message);
  }
  return data;
}

export const get = (path, options) => request('GET', path, undefined, options);
/** POST; without `body` no body is sent (some endpoints refuse one). */
export const post = (path, body) => request('POST', path, body);

/** `path?k=v` with empty values dropped. */
export function withQuery(path, query) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') params.set(k, v);
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

/** Like `get`, but a failure becomes `fallback` (for optional parts of a page). */
export async function getOr(path, fallback) {
  try {
    return await get(path);
  } catch (err) {
    if (err instanceof ApiError && err.status !== 0 && err.status !== 503) return fallback;
    throw err;
  }
}
