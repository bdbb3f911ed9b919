// The official @trigger.dev/core ApiClient, with a public token, through a fetch that
// applies the browser's CORS rules (as a page on ORIGIN would see them):
//
//   node cors_browser_fetch.mjs URL PUBLIC_TOKEN SESSION ORIGIN BRANCH [SUBSCRIBE_MAX_MS]
//
// Every request the SDK makes is preceded by an OPTIONS preflight carrying Origin,
// Access-Control-Request-Method and Access-Control-Request-Headers (the non-safelisted
// header names, lowercased and sorted, as browsers send them). The preflight answer must
// pass the Fetch standard's CORS check, then the request is sent with Origin, its answer
// must allow the origin, and the SDK only sees the headers a browser would let it read
// (CORS-safelisted ones plus Access-Control-Expose-Headers). A failed check is a
// TypeError, as in a browser. Prints one JSON line:
//   {"ops": {...}, "preflights": [{method, path, requested, status, body, headers}]}
import { ApiClient } from "@trigger.dev/core/v3";

const [url, token, session, origin, branch, maxMs] = process.argv.slice(2);

const SIMPLE_METHODS = new Set(["GET", "HEAD", "POST"]);
const SAFELISTED_REQUEST = new Set(["accept", "accept-language", "content-language"]);
const SIMPLE_CONTENT_TYPES = new Set([
  "application/x-www-form-urlencoded",
  "multipart/form-data",
  "text/plain",
]);
const SAFELISTED_RESPONSE = new Set([
  "cache-control",
  "content-language",
  "content-length",
  "content-type",
  "expires",
  "last-modified",
  "pragma",
]);

const list = (value) =>
  (value ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);

function requestedHeaders(headers) {
  const names = [];
  for (const [name, value] of headers) {
    if (SAFELISTED_REQUEST.has(name)) continue;
    if (name === "content-type" && SIMPLE_CONTENT_TYPES.has(value.split(";")[0].trim())) continue;
    names.push(name);
  }
  return names.sort();
}

function allowsOrigin(response) {
  const allowed = response.headers.get("access-control-allow-origin");
  return allowed === "*" || allowed === origin;
}

const preflights = [];
const realFetch = globalThis.fetch;

globalThis.fetch = async (input, init = {}) => {
  const target = new URL(typeof input === "string" ? input : input.url);
  const method = (init.method ?? "GET").toUpperCase();
  const headers = new Headers(init.headers);
  const requested = requestedHeaders(headers);
  const preflight = await realFetch(target, {
    method: "OPTIONS",
    headers: {
      Origin: origin,
      "Access-Control-Request-Method": method,
      ...(requested.length ? { "Access-Control-Request-Headers": requested.join(",") } : {}),
    },
  });
  const body = await preflight.text();
  preflights.push({
    method,
    path: target.pathname,
    requested,
    status: preflight.status,
    body,
    headers: Object.fromEntries(preflight.headers),
  });
  const methods = list(preflight.headers.get("access-control-allow-methods"));
  const allowedHeaders = list(preflight.headers.get("access-control-allow-headers"));
  const refused =
    !(preflight.status >= 200 && preflight.status < 300) ? `status ${preflight.status}`
    : !allowsOrigin(preflight) ? "origin not allowed"
    : !SIMPLE_METHODS.has(method) && !methods.includes(method.toLowerCase()) && !methods.includes("*")
      ? `method ${method} not allowed`
    : requested.find((h) => !allowedHeaders.includes(h) && !(allowedHeaders.includes("*") && h !== "authorization"));
  if (refused) throw new TypeError(`CORS preflight of ${method} ${target.pathname} failed: ${refused}`);

  headers.set("Origin", origin);
  const response = await realFetch(target, { ...init, headers });
  if (!allowsOrigin(response)) {
    throw new TypeError(`CORS: ${method} ${target.pathname} answer does not allow ${origin}`);
  }
  const exposed = list(response.headers.get("access-control-expose-headers"));
  const visible = new Headers();
  for (const [name, value] of response.headers) {
    if (SAFELISTED_RESPONSE.has(name) || exposed.includes(name) || exposed.includes("*")) {
      visible.append(name, value);
    }
  }
  return new Response(response.body, {
    status: response.status,
    statusText: response.statusText,
    headers: visible,
  });
};

async function attempt(fn) {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    return { ok: false, error: `${err?.constructor?.name}: ${err?.message ?? err}` };
  }
}

async function subscribeOut(api) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), Number(maxMs ?? 8000));
  const chunks = [];
  let error = null;
  try {
    const stream = await api.subscribeToSessionStream(session, "out", {
      signal: abort.signal,
      timeoutInSeconds: 1,
      onError: (err) => {
        error = String(err?.message ?? err);
      },
    });
    const reader = stream.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
      if (chunks.length >= 2) break;
    }
    await reader.cancel().catch(() => {});
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  if (error) throw new Error(error);
  return chunks;
}

const api = new ApiClient(url, token, branch, { retry: { maxAttempts: 1 } });
const ops = {};
ops.append = await attempt(() => api.appendToSessionStream(session, "in", '{"text":"hi"}'));
ops.records = await attempt(() => api.readSessionStreamRecords(session, "in"));
ops.subscribe = await attempt(() => subscribeOut(api));
console.log(JSON.stringify({ ops, preflights }));
