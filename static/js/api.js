// Talking to the API: JSON in and out, the session's CSRF token, the API's one error shape.
// Broker trouble anywhere is announced as a `broker-trouble` event for the banner.

export const config = JSON.parse(document.getElementById("page-config")?.textContent || "{}");

function csrfToken() {
  return document.querySelector("input[name=csrfmiddlewaretoken]")?.value || "";
}

export class ApiError extends Error {
  constructor(status, body) {
    const first = body?.errors?.[0];
    super(first?.detail || `Request failed (${status})`);
    this.status = status;
    this.body = body || {};
    this.code = first?.code || (status === 0 ? "network" : "error");
    this.trade = body?.trade;
  }

  // {attr: [detail, ...]} for forms; errors without an attr go under non_field_errors.
  fieldErrors() {
    const fields = {};
    for (const error of this.body.errors || []) {
      const attr = error.attr || "non_field_errors";
      (fields[attr] ||= []).push(error.detail);
    }
    return fields;
  }
}

const BROKER_TROUBLE = new Set(["broker_reauthenticate", "broker_unavailable", "broker_forbidden"]);

export async function request(method, url, { body, headers = {}, token } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin" };
  if (token) init.headers.Authorization = `Token ${token}`;
  if (method !== "GET") init.headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, { errors: [{ code: "network", detail: "The server cannot be reached." }] });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (BROKER_TROUBLE.has(error.code)) {
      window.dispatchEvent(new CustomEvent("broker-trouble", { detail: { code: error.code, detail: error.message } }));
    }
    throw error;
  }
  return { status: response.status, data };
}

export const get = (url) => request("GET", url).then((answer) => answer.data);
export const post = (url, body, options = {}) => request("POST", url, { body, ...options });
export const put = (url, body) => request("PUT", url, { body });
export const del = (url) => request("DELETE", url);

export function newIdempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}
