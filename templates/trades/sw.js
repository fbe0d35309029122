// tradeoptions' service worker (served at /sw.js by trades.views.service_worker): a push from the
// server becomes a notification, even with every tab closed; a tap opens or focuses the Portfolio.
// It caches nothing: prices and positions are always read fresh from the server.
const { ICON, BADGE, PORTFOLIO } = {{ worker_config|safe }};

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

function readPush(data) {
  if (!data) return {};
  try {
    return data.json();
  } catch {
    return { body: data.text() };
  }
}

self.addEventListener("push", (event) => {
  const message = readPush(event.data);
  event.waitUntil(self.registration.showNotification(message.title || "tradeoptions", {
    body: message.body || "",
    tag: message.tag || undefined,
    icon: ICON,
    badge: BADGE,
    requireInteraction: Boolean(message.critical),
    data: { url: message.url || PORTFOLIO },
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = new URL(event.notification.data?.url || PORTFOLIO, self.location.origin);
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const open = windows.find((client) => new URL(client.url).pathname === target.pathname);
    if (open) return open.focus();
    return self.clients.openWindow(target.href);
  })());
});
