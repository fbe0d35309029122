// The settings page: broker mode and account, write-only broker tokens ("set" / "not set"),
// limits and auto-refresh through /api/settings; the guarded switch to live trading; API tokens
// (create, shown once, revoke).

import { ApiError, config, get, post, put } from "./api.js";
import { toast } from "./toast.js";
import { startTopbar } from "./topbar.js";

const form = document.getElementById("settings-form");
const LIVE = "TRADIER_LIVE";
const FIELDS = ["broker_mode", "tradier_account_id", "account_balance", "max_positions", "daily_loss_limit", "heat_limit_pct"];
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
  form.elements.auto_refresh.checked = account.auto_refresh;
  form.elements.tradier_sandbox_token.value = "";
  form.elements.tradier_live_token.value = "";
  form.elements.confirmation.value = "";
  document.getElementById("s-sandbox-remove").checked = false;
  document.getElementById("s-live-remove").checked = false;
  tokenState("sandbox-token-state", account.has_sandbox_token);
  tokenState("live-token-state", account.has_live_token);
  document.getElementById("live-allowed-note").textContent = account.live_trading_allowed
    ? "You also need a stored live token."
    : "This server does not allow live trading (ALLOW_LIVE_TRADING is off).";
  guardLive();
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
  if (form.elements.auto_refresh.checked !== current.auto_refresh) body.auto_refresh = form.elements.auto_refresh.checked;
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

function bindTokens() {
  const issued = document.getElementById("token-issued");
  const value = document.getElementById("token-value");
  const revokeError = document.getElementById("token-revoke-error");
  document.getElementById("token-create").addEventListener("click", async () => {
    try {
      const { data } = await post(config.urls.token);
      value.value = data.token;
      document.getElementById("token-expiry").textContent = data.expiry ? `Expires ${new Date(data.expiry).toLocaleString()}` : "Does not expire.";
      issued.hidden = false;
      value.focus();
      value.select();
      toast("Token created: copy it now, it is shown only once", "success");
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

startTopbar();
form.elements.broker_mode.addEventListener("change", () => {
  clearErrors(form);
  guardLive();
});
form.addEventListener("submit", save);
bindTokens();
get(config.urls.settings).then(render).catch((error) => toast(error.message, "error"));
