// "Push to this device" on the settings page: Web Push to this browser, even with every tab
// closed. Opt-in only: nothing asks the browser for permission, and no subscription is made,
// until the trader ticks the box (a user gesture). Ticked: permission, the service worker at
// /sw.js, a fresh push subscription (never one another trader left in this browser), sent to
// the server, which makes the device a channel. Unticked: the server forgets it, then the browser.
// The box says the state: on, off, blocked (permission refused) or unsupported.

import { ApiError, config, del, get, post } from "./api.js";

let box;
let state;
let problem;
let onChange = () => {};

export const pushSupported = () => "serviceWorker" in navigator && "PushManager" in window && "Notification" in window
  && window.isSecureContext;

function show(words, { checked = false, disabled = false } = {}) {
  box.checked = checked;
  box.disabled = disabled;
  state.textContent = words;
}

function keyBytes(base64url) {
  const padded = base64url.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (base64url.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (char) => char.charCodeAt(0));
}

async function sha256Hex(text) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

function deviceName() {
  const agent = navigator.userAgent;
  const browser = /Edg\//.test(agent) ? "Edge" : /Firefox\//.test(agent) ? "Firefox" : /Chrome\//.test(agent) ? "Chrome" : /Safari\//.test(agent) ? "Safari" : "Browser";
  const system = /Android/.test(agent) ? "Android" : /iPhone|iPad/.test(agent) ? "iOS" : /Mac OS X/.test(agent) ? "Mac" : /Windows/.test(agent) ? "Windows" : /Linux/.test(agent) ? "Linux" : "";
  return `Push: ${browser}${system ? ` on ${system}` : ""}`;
}

// This browser's subscription and the server's record of it (by the endpoint's SHA-256), if any.
async function current() {
  const registration = await navigator.serviceWorker.getRegistration("/");
  const subscription = registration ? await registration.pushManager.getSubscription() : null;
  if (!subscription) return { subscription: null, saved: null };
  const digest = await sha256Hex(subscription.endpoint);
  const saved = (await get(config.urls.push_subscriptions)).find((row) => row.endpoint_sha256 === digest) || null;
  return { subscription, saved };
}

async function refresh() {
  if (!pushSupported()) return show("unsupported: this browser cannot take pushes here", { disabled: true });
  if (!config.push_public_key) return show("unavailable: push is not set up on this server", { disabled: true });
  if (Notification.permission === "denied") {
    return show("blocked: notifications are refused for this site in the browser's settings", { disabled: true });
  }
  const { subscription, saved } = await current();
  if (subscription && saved) return show("on", { checked: true });
  return show("off");
}

async function switchOn() {
  const permission = await Notification.requestPermission();
  if (permission !== "granted") {
    await refresh();
    if (permission === "default") state.textContent = "off: the browser was not given permission";
    return;
  }
  const registration = await navigator.serviceWorker.register(config.urls.service_worker, { scope: "/" });
  await navigator.serviceWorker.ready;
  const left = await registration.pushManager.getSubscription();
  if (left) await left.unsubscribe(); // perhaps another trader's, from before a log-out: never reused
  const subscription = await registration.pushManager.subscribe({
    userVisibleOnly: true, applicationServerKey: keyBytes(config.push_public_key),
  });
  try {
    await post(config.urls.push_subscriptions, { ...subscription.toJSON(), device: deviceName() });
  } catch (error) {
    await subscription.unsubscribe();
    throw error;
  }
  show("on", { checked: true });
}

async function switchOff() {
  const { subscription, saved } = await current();
  if (saved) await del(`${config.urls.push_subscriptions}/${saved.id}`);
  if (subscription) await subscription.unsubscribe();
  show("off");
}

async function toggled() {
  problem.textContent = "";
  const wanted = box.checked;
  box.disabled = true;
  state.textContent = wanted ? "switching on…" : "switching off…";
  try {
    await (wanted ? switchOn() : switchOff());
    onChange();
  } catch (error) {
    problem.textContent = error instanceof ApiError ? error.message : `This browser could not ${wanted ? "subscribe" : "unsubscribe"}: ${error.message || error}`;
    await refresh().catch(() => show("off"));
  }
}

// `changed`: called after the device was added or removed (the channel list shows it).
export function startPush({ changed } = {}) {
  box = document.getElementById("push-toggle");
  if (!box) return;
  state = document.getElementById("push-state");
  problem = document.getElementById("push-error");
  onChange = changed || onChange;
  box.addEventListener("change", toggled);
  refresh().catch((error) => {
    show("off");
    problem.textContent = error.message || String(error);
  });
}
