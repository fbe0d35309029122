// Starts Swagger UI on /api/docs/ (the vendored bundle is loaded just before). The page's policy
// allows no inline script, so the settings come from the JSON script tag #api-docs-config.
// "Try it out" calls the API with the session: writes carry the page's CSRF token.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("api-docs-config").textContent);
  const csrfToken = document.querySelector("input[name=csrfmiddlewaretoken]")?.value || "";

  const requestInterceptor = (request) => {
    if (!["GET", "HEAD", undefined].includes(request.method) && request.credentials === "same-origin") {
      request.headers[config.csrfHeader] = csrfToken;
    }
    return request;
  };

  window.ui = SwaggerUIBundle({
    url: config.schemaUrl,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    requestInterceptor,
    ...config.settings,
  });
})();
