// A minimal stand-in for Cypress's `cy` and `Cypress` globals, enough to run the command
// implementations of cypress-mailpit and cypress-mailhog outside a browser: the Cypress binary
// cannot be downloaded here. Each command's own code runs unchanged; `cy.request` performs the
// real HTTP request with fetch (following redirects, failing on a non-2xx status unless
// failOnStatusCode is false, as Cypress does) and parses JSON bodies as Cypress does.
// Not emulated: Cypress's command queue and retried assertions (`cy.verifyUpcomingAssertions`
// resolves at once with the subject, i.e. no assertion follows).

class Chain {
  constructor(value) {
    // A command may return another chain: adopt its promise (a Chain is not a thenable).
    this.promise = Promise.resolve(value instanceof Chain ? value.promise : value);
  }
  then(fn) {
    return new Chain(
      this.promise.then((value) => {
        const result = fn(value);
        return result instanceof Chain ? result.promise : result;
      }),
    );
  }
  its(name) {
    return this.then((value) => value[name]);
  }
  should() {
    return this;
  }
}

function basicAuth(auth) {
  if (!auth || typeof auth !== "object" || !auth.user) return undefined;
  return `Basic ${Buffer.from(`${auth.user}:${auth.pass}`).toString("base64")}`;
}

async function request(options) {
  const url = new URL(options.url);
  for (const [key, value] of Object.entries(options.qs || {})) {
    url.searchParams.set(key, String(value));
  }
  const headers = { ...(options.headers || {}) };
  const authorization = basicAuth(options.auth);
  if (authorization) headers.Authorization = authorization;
  let body;
  if (options.body !== undefined) {
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    if (typeof options.body !== "string") headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, { method: options.method || "GET", headers, body });
  const text = await response.text();
  let parsed = text;
  if ((response.headers.get("content-type") || "").includes("json") && text) {
    parsed = JSON.parse(text);
  }
  const failOnStatusCode = options.failOnStatusCode !== false;
  if (failOnStatusCode && (response.status < 200 || response.status >= 300)) {
    throw new Error(`cy.request failed: ${response.status} ${options.method} ${url}: ${text}`);
  }
  return { status: response.status, body: parsed, headers: Object.fromEntries(response.headers) };
}

export function install({ env = {}, expose = {}, config = {} } = {}) {
  const commands = {};
  const cy = {
    request: (options) => new Chain(request(options)),
    wrap: (value) => new Chain(value),
    wait: (ms) => new Chain(new Promise((resolve) => setTimeout(resolve, ms))),
    env: (names) => new Chain(Object.fromEntries(names.map((n) => [n, env[n]]))),
    verifyUpcomingAssertions: (subject) => new Chain(subject),
  };
  const Cypress = {
    env: (name) => env[name],
    expose: (name) => expose[name],
    config: (name) => config[name],
    Commands: {
      add(name, optionsOrFn, maybeFn) {
        const fn = typeof optionsOrFn === "function" ? optionsOrFn : maybeFn;
        const options = typeof optionsOrFn === "function" ? {} : optionsOrFn || {};
        commands[name] = { fn, child: Boolean(options.prevSubject) };
        cy[name] = (...args) => new Chain(fn(...args));
      },
    },
  };
  globalThis.cy = cy;
  globalThis.Cypress = Cypress;
  return { cy, commands };
}

// Run a command and settle its chain to a plain value.
export async function run(chainOrValue) {
  return chainOrValue instanceof Chain ? chainOrValue.promise : chainOrValue;
}
