// The settings page: broker mode and account, write-only broker tokens ("set" / "not set"),
// limits, the commission per contract and auto-refresh through /api/settings; the guarded switch to live trading; API tokens
// (create, shown once, listed by their key, revoke after a confirmation, sign them all out with the
// session); notifications (browser
// notifications, asked for only when the box is ticked; a webhook URL and its secret, shown once;
// notification channels, in channels.js).

import { ApiError, config, del, get, post, put } from "./api.js";
import { reloadChannels, startChannels } from "./channels.js";
import { el } from "./dom.js";
import { dateTime } from "./format.js";
import { askPermission } from "./notify.js";
import { startPush } from "./push.js";
import { toast } from "./toast.js";
import { startTopbar } from "./topbar.js";

const form = document.getElementById("settings-form");
const LIVE = "TRADIER_LIVE";
const FIELDS = ["broker_mode", "tradier_account_id", "account_balance", "max_positions", "daily_loss_limit", "heat_limit_pct",
  "commission_per_contract", "webhook_url"];
const CHECKS = ["auto_refresh", "browser_notifications", "daily_report", "weekly_report"];
let current = null;

function clearErrors(target) {
  for (const node of target.querySelectorAll("[data-error-for]")) node.textContent = "";
  for (const node of target.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

function showErrors(target, error) {
  const fields = error instanceof ApiError ? error.fieldErrors() : { non_field_errors: [String(error)] };
  for (const [attr, details] of Object.entries(fields)) {
    const box = target.querySelector(`[data-error-for="${attr}"]`) || target.querySelector('[data-error-for="non_field_errors"]');
    box.textContent = [box.textContent, details.join(" ")].filter(Boolean).join(" ");
    target.elements[attr]?.setAttribute("aria-invalid", "true");
  }
  target.querySelector("[aria-invalid]")?.focus();
}

function tokenState(id, isSet) {
  const node = document.getElementById(id);
  node.textContent = isSet ? "(set)" : "(not set)";
  node.classList.toggle("is-set", isSet);
}

function render(account) {
  current = account;
  for (const name of FIELDS) form.elements[name].value = account[name] ?? "";
  for (const name of CHECKS) form.elements[name].checked = account[name];
  form.elements.tradier_sandbox_token.value = "";
  form.elements.tradier_live_token.value = "";
  form.elements.confirmation.value = "";
  document.getElementById("s-sandbox-remove").checked = false;
  document.getElementById("s-live-remove").checked = false;
  tokenState("sandbox-token-state", account.has_sandbox_token);
  tokenState("live-token-state", account.has_live_token);
  secretState(account.has_webhook_secret);
  document.getElementById("live-allowed-note").textContent = account.live_trading_allowed
    ? "You also need a stored live token."
    : "This server does not allow live trading (ALLOW_LIVE_TRADING is off).";
  guardLive();
}

function secretState(isSet) {
  const node = document.getElementById("webhook-secret-state");
  node.textContent = isSet ? "(signing secret set)" : "(no signing secret yet: events are sent once one is made)";
  node.classList.toggle("is-set", isSet);
  document.getElementById("webhook-secret-create").textContent = isSet ? "Replace the signing secret" : "Make a signing secret";
}

function guardLive() {
  const switching = form.elements.broker_mode.value === LIVE && current?.broker_mode !== LIVE;
  document.getElementById("live-guard").hidden = !switching;
  form.elements.confirmation.required = switching;
}

async function save(event) {
  event.preventDefault();
  clearErrors(form);
  const body = {};
  for (const name of FIELDS) {
    const value = form.elements[name].value.trim();
    if (value !== String(current[name] ?? "")) body[name] = value;
  }
  for (const name of CHECKS) if (form.elements[name].checked !== current[name]) body[name] = form.elements[name].checked;
  for (const [name, remove] of [["tradier_sandbox_token", "s-sandbox-remove"], ["tradier_live_token", "s-live-remove"]]) {
    const value = form.elements[name].value.trim();
    if (value) body[name] = value;
    else if (document.getElementById(remove).checked) body[name] = "";
  }
  if (body.broker_mode === LIVE) body.confirmation = form.elements.confirmation.value;
  if (!Object.keys(body).length) {
    toast("Nothing changed", "info");
    return;
  }
  const button = document.getElementById("settings-save");
  button.disabled = true;
  try {
    const { data } = await put(config.urls.settings, body);
    render(data);
    toast("Settings saved", "success");
    if ("broker_mode" in body) location.reload(); // the top bar's mode badge is server-rendered
  } catch (error) {
    showErrors(form, error);
  } finally {
    button.disabled = false;
  }
}

// --- API tokens ----------------------------------------------------------------------------------

const tokenDialog = document.getElementById("token-dialog");
const tokens = { issuedKey: null, revoking: null };

// The caller's tokens as the API lists them: their key (a prefix that cannot sign in), when they
// were made and when they expire. The one created on this page just now is marked "new".
async function loadTokens({ issued } = {}) {
  const error = document.getElementById("token-list-error");
  const table = document.getElementById("token-list");
  table.setAttribute("aria-busy", "true");
  try {
    const rows = await get(config.urls.tokens);
    if (issued) tokens.issuedKey = rows.find((row) => issued.startsWith(row.token_key))?.token_key ?? null;
    table.querySelector("tbody").replaceChildren(...rows.map(tokenRow));
    document.getElementById("token-list-empty").hidden = rows.length > 0;
    error.textContent = "";
  } catch (problem) {
    error.textContent = `Your tokens could not be listed: ${problem.message}`;
  } finally {
    table.removeAttribute("aria-busy");
  }
}

function tokenRow(token) {
  const name = `${token.token_key}…`;
  const isNew = token.token_key === tokens.issuedKey;
  return el("tr", { dataset: { tokenKey: token.token_key } },
    el("th", { scope: "row", dataset: { label: "Token" } },
      el("code", { text: name }), isNew ? el("span", { className: "status-tag token-new", text: "new" }) : null),
    el("td", { dataset: { label: "Created" }, text: dateTime(token.created) }),
    el("td", { dataset: { label: "Expires" }, text: token.expiry ? dateTime(token.expiry) : "never" }),
    el("td", { className: "row-actions" },
      el("button", { type: "button", className: "danger revoke-token", "aria-label": `Revoke token ${name}`,
        onclick: (event) => askRevoke(token, event.currentTarget) }, "Revoke")));
}

function askRevoke(token, opener) {
  tokens.revoking = { key: token.token_key, opener };
  document.getElementById("token-dialog-title").textContent = `Revoke token ${token.token_key}…?`;
  document.getElementById("token-dialog-text").textContent =
    `Created ${dateTime(token.created)}. Scripts and scanners using it are refused from now on; this cannot be undone.`;
  tokenDialog.returnValue = "";
  tokenDialog.showModal();
  document.getElementById("token-dialog-keep").focus();
}

// The dialog closes by itself ("Keep it", "Revoke it" or Escape); its returnValue says which.
async function answerRevoke() {
  if (tokenDialog.open) return; // opened again before this close was reported: that one is still asking
  const asked = tokens.revoking;
  tokens.revoking = null;
  if (!asked) return;
  if (tokenDialog.returnValue !== "revoke") {
    if (asked.opener.isConnected) asked.opener.focus();
    return;
  }
  asked.opener.disabled = true;
  try {
    await del(`${config.urls.tokens}/${encodeURIComponent(asked.key)}`);
    toast(`Token ${asked.key}… revoked`, "success");
  } catch (error) {
    toast(error.status === 404 ? `Token ${asked.key}… was already gone` : error.message, "error");
  }
  await loadTokens();
  document.getElementById("token-list-title").focus(); // its row is gone: land on the list's heading
}

function bindTokens() {
  const issued = document.getElementById("token-issued");
  const value = document.getElementById("token-value");
  const revokeError = document.getElementById("token-revoke-error");
  tokenDialog.addEventListener("close", answerRevoke);
  document.getElementById("token-create").addEventListener("click", async () => {
    try {
      const { data } = await post(config.urls.token);
      value.value = data.token;
      document.getElementById("token-expiry").textContent = data.expiry ? `Expires ${dateTime(data.expiry)}` : "Does not expire.";
      issued.hidden = false;
      value.focus();
      value.select();
      toast("Token created: copy it now, it is shown only once", "success");
      await loadTokens({ issued: data.token });
    } catch (error) {
      toast(error.message, "error");
    }
  });
  document.getElementById("token-copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(value.value);
      toast("Copied", "info");
    } catch {
      value.select();
      toast("Press Ctrl+C / ⌘C to copy", "info");
    }
  });
  const revoke = async (token, url, message) => {
    revokeError.textContent = "";
    try {
      await post(url, undefined, { token });
      toast(message, "success");
      loadTokens();
      return true;
    } catch (error) {
      revokeError.textContent = error.status === 401 ? "That token is not valid (already revoked?)." : error.message;
      return false;
    }
  };
  document.getElementById("token-revoke-new").addEventListener("click", async () => {
    if (await revoke(value.value, config.urls.token_revoke, "Token revoked")) {
      value.value = "";
      issued.hidden = true;
    }
  });
  const pasted = document.getElementById("token-to-revoke");
  document.getElementById("token-revoke-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (await revoke(pasted.value.trim(), config.urls.token_revoke, "Token revoked")) pasted.value = "";
  });
  document.getElementById("token-revoke-all").addEventListener("click", async () => {
    const token = pasted.value.trim() || value.value;
    if (!token) {
      revokeError.textContent = "Paste one of your tokens first: revoking all of them is done with one of them.";
      pasted.focus();
      return;
    }
    if (await revoke(token, config.urls.token_revoke_all, "Every token revoked")) {
      pasted.value = "";
      value.value = "";
      issued.hidden = true;
    }
  });
}

// Signed in with a session, the trader needs no token to revoke them all: the session (and its
// CSRF token) is enough. Scripts using any of them are refused from then on.
async function signOutEveryToken(event) {
  const button = event.currentTarget;
  if (!confirm("Sign out every API token? Scripts and scanners using them are refused from now on; this cannot be undone.")) return;
  button.disabled = true;
  try {
    const { data } = await del(config.urls.tokens);
    toast(data.revoked ? `${data.revoked} API token(s) signed out` : "You had no API tokens", "success");
    document.getElementById("token-value").value = "";
    document.getElementById("token-issued").hidden = true;
    await loadTokens();
  } catch (error) {
    toast(error.message, "error");
  } finally {
    button.disabled = false;
  }
}

// --- Notifications -------------------------------------------------------------------------------

// The browser is asked only now, when the trader ticks the box; refused, the box unticks itself.
async function optIn(event) {
  const box = event.currentTarget;
  const error = form.querySelector('[data-error-for="browser_notifications"]');
  error.textContent = "";
  if (!box.checked) return;
  const answer = await askPermission();
  if (answer === "granted") return;
  box.checked = false;
  error.textContent = answer === "unsupported"
    ? "This browser cannot show notifications."
    : "The browser did not allow notifications: allow them for this site in its settings, then tick the box again.";
}

async function makeSecret() {
  const button = document.getElementById("webhook-secret-create");
  if (current?.has_webhook_secret && !confirm("Receivers checking the old secret will refuse new events until they have the new one. Replace it?")) return;
  button.disabled = true;
  try {
    const { data } = await post(config.urls.webhook_secret);
    const value = document.getElementById("webhook-secret-value");
    value.value = data.webhook_secret;
    document.getElementById("webhook-secret-issued").hidden = false;
    value.focus();
    value.select();
    toast("Signing secret made: copy it now, it is shown only once", "success");
    current.has_webhook_secret = true;
    secretState(true);
  } catch (error) {
    toast(error.message, "error");
  } finally {
    button.disabled = false;
  }
}

startTopbar();
form.elements.browser_notifications.addEventListener("change", optIn);
document.getElementById("webhook-secret-create").addEventListener("click", makeSecret);
form.elements.broker_mode.addEventListener("change", () => {
  clearErrors(form);
  guardLive();
});
form.addEventListener("submit", save);
bindTokens();
document.getElementById("token-sign-out-all").addEventListener("click", signOutEveryToken);
loadTokens();
startChannels();
startPush({ changed: reloadChannels });
get(config.urls.settings).then(render).catch((error) => toast(error.message, "error"));
