// Access to riffle's REST API. Every URL is relative to the page (served at "/"), so the UI
// works behind any prefix. Non-2xx answers become ApiError carrying the server's
// {"errors": [...]} messages.

export class ApiError extends Error {
  constructor(status, messages, path) {
    super(messages.join('; '));
    this.name = 'ApiError';
    this.status = status;
    this.messages = messages;
    this.path = path;
  }
}

const TOKEN_KEY = 'riffle.rest-token';

function withToken(options) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return options;
  return { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${token}` } };
}

async function request(path, options = {}, retried = false) {
  let response;
  try {
    response = await fetch(path, { cache: 'no-store', ...withToken(options) });
  } catch (err) {
    throw new ApiError(0, [`Network error (${err.message || err})`], path);
  }
  if (response.status === 401 && !retried) {
    // The cluster requires a bearer token (rest.auth.token): ask once per tab session.
    const token = window.prompt('This cluster requires a bearer token (rest.auth.token):');
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token.trim());
      return request(path, options, true);
    }
  }
  if (!response.ok) throw await errorFrom(response, path);
  return response;
}

async function errorFrom(response, path) {
  const text = await response.text().catch(() => '');
  let messages = null;
  try {
    const body = JSON.parse(text);
    if (body && Array.isArray(body.errors) && body.errors.length > 0) {
      messages = body.errors.map(String);
    }
  } catch (_) {
    // not JSON: fall through to a generic message with the start of the body
  }
  if (!messages) {
    const snippet = text.trim().slice(0, 200);
    messages = [`HTTP ${response.status} ${response.statusText}${snippet ? ': ' + snippet : ''}`];
  }
  return new ApiError(response.status, messages, path);
}

async function parseJson(response, path) {
  const text = await response.text();
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError(response.status, [`Invalid JSON from ${path}: ${err.message}`], path);
  }
}

/** GET a JSON document. */
export async function getJson(path) {
  const response = await request(path, { headers: { Accept: 'application/json' } });
  return parseJson(response, path);
}

/**
 * Waits for every promise; if any failed, throws (one error as is, several as an
 * AggregateError) so that no failure is dropped.
 */
export async function all(promises) {
  const results = await Promise.allSettled(promises);
  const failures = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
  if (failures.length === 1) throw failures[0];
  if (failures.length > 1) throw new AggregateError(failures, 'Several requests failed');
  return results.map((r) => r.value);
}

/** GET a text document; `range` = [first, last] byte offsets (inclusive) for a partial read. */
export async function getText(path, range) {
  const headers = {};
  if (range) headers.Range = `bytes=${range[0]}-${range[1]}`;
  const response = await request(path, { headers });
  return { text: await response.text(), partial: response.status === 206 };
}

/** Sends a JSON body with the given method and returns the parsed answer. */
export async function sendJson(method, path, body) {
  const response = await request(path, {
    method,
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
  return parseJson(response, path);
}

/** Encodes one path segment (ids, file names). */
export function seg(value) {
  return encodeURIComponent(String(value));
}
