// Small DOM helpers. Text goes in through textContent only: whatever the API sends (a SKU, a
// reason) is shown as text, never parsed as markup.

export const $ = (id) => document.getElementById(id);

/** A table cell holding ``content``: a Node as it is, anything else as text. */
export function cell(content, className = "") {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content);
  else td.textContent = content === null || content === undefined ? "" : String(content);
  if (className) td.className = className;
  return td;
}

export function row(cells) {
  const tr = document.createElement("tr");
  tr.append(...cells);
  return tr;
}

export function clear(element) {
  element.replaceChildren();
}

const INTEGER = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });

export function fmtInt(value) {
  return typeof value === "number" ? INTEGER.format(value) : "";
}

/** An event's time (epoch milliseconds, or an ISO string) as ISO 8601 UTC, to the second. */
export function fmtTime(value) {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString().replace(/\.\d{3}Z$/, "Z");
}
