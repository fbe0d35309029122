// The settings page's notification channels: list (URL shown only as its hint), add, change,
// remove, send a test, and read a channel's delivery log. The URL field is write-only: left empty
// on a change, the stored URL stays. A device that takes pushes (push.js) is a channel too, with
// no URL of its own ("push://" and its push service's host).

import { ApiError, config, del, get, post, put } from "./api.js";
import { el } from "./dom.js";
import { dateTime } from "./format.js";
import { toast } from "./toast.js";

const STATUS = { PENDING: "Sending", HELD: "Held (quiet hours)", DELIVERED: "Delivered", FAILED: "Failed", DROPPED: "Dropped (quiet hours)" };
let form;
let editing = null;
let channels = [];

function clearErrors() {
  for (const node of form.querySelectorAll("[data-error-for]")) node.textContent = "";
}

function showErrors(error) {
  const fields = error instanceof ApiError ? error.fieldErrors() : { non_field_errors: [String(error)] };
  for (const [attr, details] of Object.entries(fields)) {
    const box = form.querySelector(`[data-error-for="${attr}"]`) || form.querySelector('[data-error-for="non_field_errors"]');
    box.textContent = details.join(" ");
  }
}

function eventLabels(values) {
  const labels = new Map([...form.querySelectorAll('input[name="events"]')].map((box) => [box.value, box.parentElement.textContent.trim()]));
  return values.map((value) => labels.get(value) || value).join(", ") || "none";
}

function renderList() {
  const body = document.querySelector("#channel-list tbody");
  body.replaceChildren(...channels.map((channel) => el("tr", {},
    el("td", { text: `${channel.name}${channel.enabled ? "" : " (off)"}` }),
    el("td", {}, el("code", { text: channel.url_hint })),
    el("td", { text: eventLabels(channel.events) }),
    el("td", { text: channel.quiet_start ? `${channel.quiet_start}–${channel.quiet_end}, ${channel.quiet_mode === "DROP" ? "dropped" : "held"}` : "none" }),
    el("td", { className: "actions" },
      el("button", { type: "button", className: "secondary", text: "Send test", onclick: () => sendTest(channel) }),
      el("button", { type: "button", className: "secondary", text: "Deliveries", onclick: () => showLog(channel) }),
      el("button", { type: "button", className: "secondary", text: "Edit", onclick: () => edit(channel) }),
      el("button", { type: "button", className: "danger secondary", text: "Remove", onclick: () => remove(channel) })))));
  document.getElementById("channel-list-empty").hidden = channels.length > 0;
}

async function load() {
  channels = await get(config.urls.notification_channels);
  renderList();
}

function edit(channel) {
  editing = channel;
  clearErrors();
  form.elements.name.value = channel?.name ?? "";
  form.elements.url.value = "";
  form.elements.url.disabled = channel?.kind === "WEB_PUSH"; // a device's channel: set on the device
  form.elements.quiet_start.value = channel?.quiet_start ?? "";
  form.elements.quiet_end.value = channel?.quiet_end ?? "";
  form.elements.quiet_mode.value = channel?.quiet_mode ?? "HOLD";
  form.elements.enabled.checked = channel?.enabled ?? true;
  for (const box of form.querySelectorAll('input[name="events"]')) box.checked = channel ? channel.events.includes(box.value) : false;
  document.getElementById("c-url-state").textContent = channel ? `(stored: ${channel.url_hint}; leave empty to keep it)` : "";
  document.getElementById("channel-form-title").textContent = channel ? `Change ${channel.name}` : "Add a channel";
  document.getElementById("channel-save").textContent = channel ? "Save channel" : "Add channel";
  document.getElementById("channel-cancel").hidden = !channel;
  if (channel) form.elements.name.focus();
}

async function save(event) {
  event.preventDefault();
  clearErrors();
  const body = {
    name: form.elements.name.value.trim(),
    enabled: form.elements.enabled.checked,
    events: [...form.querySelectorAll('input[name="events"]:checked')].map((box) => box.value),
    quiet_start: form.elements.quiet_start.value || null,
    quiet_end: form.elements.quiet_end.value || null,
    quiet_mode: form.elements.quiet_mode.value,
  };
  const url = form.elements.url.value.trim();
  if (url || !editing) body.url = url;
  const button = document.getElementById("channel-save");
  button.disabled = true;
  try {
    if (editing) await put(`${config.urls.notification_channels}/${editing.id}`, body);
    else await post(config.urls.notification_channels, body);
    toast(editing ? "Channel saved" : "Channel added", "success");
    edit(null);
    await load();
  } catch (error) {
    showErrors(error);
  } finally {
    form.elements.url.value = "";
    button.disabled = false;
  }
}

async function remove(channel) {
  if (!window.confirm(`Remove the channel ${channel.name} and its delivery log?`)) return;
  try {
    await del(`${config.urls.notification_channels}/${channel.id}`);
    if (editing?.id === channel.id) edit(null);
    await load();
  } catch (error) {
    toast(error.message, "error");
  }
}

async function sendTest(channel) {
  try {
    await post(`${config.urls.notification_channels}/${channel.id}/test`);
    toast(`Test message queued for ${channel.name}; its line in Deliveries says how it went`, "success");
    window.setTimeout(() => showLog(channel), 3000);
  } catch (error) {
    toast(error.message, "error");
  }
}

async function showLog(channel) {
  const box = document.getElementById("channel-log");
  try {
    const lines = await get(`${config.urls.notification_channels}/${channel.id}/log`);
    box.querySelector("tbody").replaceChildren(...lines.map((line) => el("tr", {},
      el("td", { text: dateTime(line.created_at) }),
      el("td", { text: line.title }),
      el("td", { text: `${STATUS[line.status] || line.status}${line.attempts > 1 ? ` (${line.attempts} tries)` : ""}` }),
      el("td", { text: line.error || "" }))));
    document.getElementById("channel-log-empty").hidden = lines.length > 0;
    document.getElementById("channel-log-title").textContent = `Deliveries to ${channel.name}`;
    box.hidden = false;
  } catch (error) {
    toast(error.message, "error");
  }
}

// Read the list again (a device switched push on or off from this page).
export function reloadChannels() {
  return load().catch((error) => toast(error.message, "error"));
}

export function startChannels() {
  form = document.getElementById("channel-form");
  if (!form) return;
  form.addEventListener("submit", save);
  document.getElementById("channel-cancel").addEventListener("click", () => edit(null));
  load().catch((error) => toast(error.message, "error"));
}
