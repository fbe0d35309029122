// A small DOM helper shared by the page scripts: el("tr", {className, text, dataset, onclick, ...attrs}, ...children).
// Text goes in as text (textContent), never as HTML.

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "className") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.flat(Infinity).filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

// A sentence with its money figures ("−$1,234.50", "+$12.00") each kept on one line: the line-breaking
// rules allow a break between the sign and the "$", so each figure goes in a span that does not wrap.
const FIGURE = /[+\u2212]?\$[\d,]+(?:\.\d+)?/g;

export function withFigures(text) {
  const parts = [];
  let from = 0;
  for (const match of String(text).matchAll(FIGURE)) {
    parts.push(text.slice(from, match.index), el("span", { className: "nowrap", text: match[0] }));
    from = match.index + match[0].length;
  }
  parts.push(String(text).slice(from));
  return parts.filter((part) => part !== "");
}
