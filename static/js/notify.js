// Browser notifications (the Web Notifications API), beside the page's sounds. Opt-in: the trader
// ticks the box in their settings, and only then does the page ask the browser for permission.
// A notification is shown only when both say yes: the saved choice and the browser's permission.

import { config } from "./api.js";

export const supported = () => "Notification" in window;

// Asked only from the settings page, in answer to the trader ticking the box (a user gesture).
// A browser that has already decided answers at once, without prompting.
export async function askPermission() {
  if (!supported()) return "unsupported";
  return Notification.requestPermission();
}

export function notify(title, { body = "", tag } = {}) {
  if (!config.browser_notifications || !supported() || Notification.permission !== "granted") return null;
  try {
    // One per trade (`tag`): a later message about the same trade replaces the earlier one.
    return new Notification(title, { body, tag, icon: config.icon });
  } catch {
    return null; // some browsers only allow notifications from a service worker: the toast remains
  }
}
