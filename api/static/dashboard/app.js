// The dashboard: snapshots from the REST API, kept live by the WebSocket.
//
// Every text from the API goes into the page through textContent (dom.js), never as markup.
// Warehouse levels: GET /warehouses once subscribed, then each stock event moves its
// warehouse's stored units by its on_hand_delta (stored = the sum of on-hand there, an invariant
// of the platform) and its free space the other way; the snapshot is re-read every 30 s with the
// charts, which corrects what a snapshot taken while events flowed may have counted twice or missed.

import { ApiError, Unauthorized, getJson, session, signIn } from "/dashboard/api.js";
import { Chart, demandColumns, forecastColumns } from "/dashboard/charts.js";
import { cell, clear, fmtInt, fmtTime, row, $ } from "/dashboard/dom.js";
import { LiveFeed } from "/dashboard/live.js";

const REFRESH_MS = 30000;
const MAX_LEVEL_ROWS = 50;
const MAX_ALERTS = 50;

const state = {
  warehouses: new Map(), // id -> {capacity, stored, held, free}
  snapshotTaken: false, // warehouse deltas apply only on top of a snapshot
  lowStock: new Map(), // "sku|warehouse" -> {sku, warehouse, available, threshold}
  refreshTimer: null,
  forecastSku: "",
};
const demandChart = new Chart($("demand-chart"), "demand");
const forecastChart = new Chart($("forecast-chart"), "forecast");
const feed = new LiveFeed(() => session.token, {
  onEvent: applyEvent,
  onAlert: applyAlert,
  onStatus: showStatus,
  onSubscribed: (resumed) => { if (!resumed) loadSnapshots(); },
  expired: () => session.expired(),
  onRefused: () => failed(new Unauthorized("the WebSocket refused the token"), "live"),
});

// ------------------------------------------------------------------ session
function showSignIn(message = "") {
  stopBoard();
  $("board").hidden = true;
  $("sign-out").hidden = true;
  $("user").textContent = "";
  $("login").hidden = false;
  $("login-error").textContent = message;
}

function startBoard() {
  $("login").hidden = true;
  $("board").hidden = false;
  $("sign-out").hidden = false;
  $("user").textContent = session.user;
  feed.start();
  refreshCharts();
  state.refreshTimer = setInterval(periodic, REFRESH_MS);
}

function stopBoard() {
  feed.stop();
  clearInterval(state.refreshTimer);
  state.refreshTimer = null;
}

/** Every failed call ends here: a 401 signs out; anything else is shown, never thrown on. */
function failed(error, where) {
  if (error instanceof Unauthorized) {
    session.clear();
    showSignIn("Your session has ended: sign in again.");
    return;
  }
  console.warn(`dashboard: ${where}: ${error.message}`);
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    await signIn($("username").value, $("password").value);
    $("password").value = "";
    startBoard();
  } catch (error) {
    const text = error instanceof ApiError && error.status === 401 ? "Wrong user name or password."
      : `Sign-in failed: ${error.message}`;
    $("login-error").textContent = text;
  }
});

$("sign-out").addEventListener("click", () => {
  session.clear();
  showSignIn();
});

// ------------------------------------------------------------------ status
function showStatus(stateName, text) {
  const status = $("status");
  status.dataset.state = stateName;
  status.textContent = text;
}

// ------------------------------------------------------------------ snapshots
async function loadSnapshots() {
  await Promise.all([loadWarehouses(), loadLowStock()]);
}

async function periodic() {
  await Promise.all([loadWarehouses(), refreshCharts()]);
}

async function loadWarehouses() {
  try {
    const list = (await getJson("/warehouses")) || [];
    state.warehouses = new Map(list.map((w) => [w.warehouse_id, {
      capacity: w.capacity, stored: w.stored, held: w.held, free: w.free }]));
    state.snapshotTaken = true;
    renderWarehouses();
  } catch (error) {
    failed(error, "warehouses");
  }
}

async function loadLowStock() {
  try {
    const list = (await getJson("/inventory/low-stock")) || [];
    state.lowStock = new Map(list.map((l) => [`${l.product_id}|${l.warehouse}`, {
      sku: l.product_id, warehouse: l.warehouse, available: l.available, threshold: l.low_stock_threshold }]));
    renderLowStock();
  } catch (error) {
    failed(error, "low stock");
  }
}

// ------------------------------------------------------------------ live events
function applyEvent(event) {
  if (!event.warehouse || typeof event.on_hand !== "number") return; // no level of a warehouse moved
  if (/Rejected$/.test(event.type || "")) return; // a refusal changed nothing
  moveWarehouse(event.warehouse, event.on_hand_delta || 0);
  showLevel(event);
  trackLowStock(event);
}

function moveWarehouse(id, delta) {
  const warehouse = state.warehouses.get(id);
  if (!state.snapshotTaken || !warehouse || !delta) return;
  warehouse.stored += delta;
  warehouse.free -= delta;
  renderWarehouses();
}

function showLevel(event) {
  const testid = `level-${event.sku}-${event.warehouse}`;
  const body = $("levels");
  for (const old of body.querySelectorAll("tr")) {
    if (old.dataset.testid === testid) old.remove();
  }
  const available = typeof event.available === "number" ? event.available : event.on_hand - event.reserved;
  const tr = row([
    cell(event.sku, "sku"), cell(event.warehouse), cell(fmtInt(event.on_hand), "num on-hand"),
    cell(fmtInt(event.reserved), "num reserved"), cell(fmtInt(available), "num available"),
    cell(event.type), cell(fmtTime(event.occurred_at)),
  ]);
  tr.dataset.testid = testid;
  tr.dataset.sku = event.sku;
  tr.classList.add("selectable");
  body.prepend(tr);
  while (body.rows.length > MAX_LEVEL_ROWS) body.deleteRow(-1);
  $("levels-empty").hidden = true;
}

/** A level's every event says where it stands against its threshold: keep the list in step
 * (a LowStock alert comes only on the crossing; recovering has no message of its own). */
function trackLowStock(event) {
  const key = `${event.sku}|${event.warehouse}`;
  const threshold = event.low_stock_threshold || 0;
  const available = event.on_hand - event.reserved;
  if (threshold > 0 && available < threshold) {
    state.lowStock.set(key, { sku: event.sku, warehouse: event.warehouse, available, threshold });
  } else if (!state.lowStock.delete(key)) {
    return;
  }
  renderLowStock();
}

function applyAlert(alert) {
  state.lowStock.set(`${alert.sku}|${alert.warehouse}`, {
    sku: alert.sku, warehouse: alert.warehouse, available: alert.available, threshold: alert.threshold });
  renderLowStock();
  const item = document.createElement("li");
  item.dataset.testid = `alert-${alert.sku}-${alert.warehouse}`;
  item.dataset.sku = alert.sku;
  item.className = "selectable";
  const when = document.createElement("time");
  when.textContent = fmtTime(alert.occurred_at);
  const text = document.createElement("span");
  text.textContent = ` ${alert.sku} in ${alert.warehouse}: ${fmtInt(alert.available)} available,`
    + ` below ${fmtInt(alert.threshold)}`;
  item.append(when, text);
  const list = $("alerts");
  list.prepend(item);
  while (list.children.length > MAX_ALERTS) list.lastElementChild.remove();
  $("alerts-empty").hidden = true;
}

// ------------------------------------------------------------------ rendering
function renderWarehouses() {
  const body = $("warehouses");
  clear(body);
  for (const [id, w] of [...state.warehouses].sort(([a], [b]) => a.localeCompare(b))) {
    const meter = document.createElement("meter");
    meter.min = 0;
    meter.max = Math.max(1, w.capacity);
    meter.value = Math.max(0, w.stored + w.held);
    const tr = row([cell(id), cell(fmtInt(w.capacity), "num capacity"), cell(fmtInt(w.stored), "num stored"),
                    cell(fmtInt(w.held), "num held"), cell(fmtInt(w.free), "num free"), cell(meter)]);
    tr.dataset.testid = `warehouse-${id}`;
    body.append(tr);
  }
  $("warehouses-empty").hidden = state.warehouses.size > 0;
}

function renderLowStock() {
  const body = $("low-stock");
  clear(body);
  const rows = [...state.lowStock.values()].sort((a, b) => a.available - b.available);
  for (const level of rows) {
    const tr = row([cell(level.sku, "sku"), cell(level.warehouse), cell(fmtInt(level.available), "num available"),
                    cell(fmtInt(level.threshold), "num threshold")]);
    tr.dataset.testid = `low-${level.sku}-${level.warehouse}`;
    tr.dataset.sku = level.sku;
    tr.classList.add("selectable");
    body.append(tr);
  }
  $("low-stock-empty").hidden = rows.length > 0;
}

// ------------------------------------------------------------------ charts
async function refreshCharts() {
  await Promise.all([loadDemand(), state.forecastSku ? loadForecast(state.forecastSku) : null]);
}

async function loadDemand() {
  let doc = null;
  try {
    doc = await getJson("/analytics/inventory?granularity=hour");
  } catch (error) {
    failed(error, "analytics");
  }
  const drawn = demandChart.show(demandColumns(doc));
  $("demand-empty").hidden = drawn;
  $("demand-totals").textContent = demandTotals(doc);
}

function demandTotals(doc) {
  const totals = doc && doc.totals;
  if (!totals) return "";
  const parts = [];
  if (typeof totals.stockout_rate === "number") parts.push(`stockout rate ${(totals.stockout_rate * 100).toFixed(1)} %`);
  if (totals.stock_value !== undefined && totals.stock_value !== null) parts.push(`stock value ${totals.stock_value}`);
  for (const low of doc.low_stock || []) parts.push(`${low.warehouse}: ${fmtInt(low.skus_low)} SKUs low`);
  return parts.join(" · ");
}

async function loadForecast(sku) {
  let doc = null;
  try {
    doc = await getJson(`/analytics/forecast/${encodeURIComponent(sku)}`);
  } catch (error) {
    failed(error, "forecast");
  }
  if (sku !== state.forecastSku) return; // another SKU was chosen meanwhile
  const drawn = doc && doc.has_history !== false ? forecastChart.show(forecastColumns(doc)) : forecastChart.show([[]]);
  $("forecast-empty").textContent = doc && doc.reason ? `no data: ${doc.reason}` : "no data";
  $("forecast-empty").hidden = drawn;
  $("forecast-summary").textContent = drawn ? forecastSummary(sku, doc) : "";
}

function forecastSummary(sku, doc) {
  const parts = [sku];
  if (doc.reorder_point !== undefined && doc.reorder_point !== null) parts.push(`reorder point ${fmtInt(doc.reorder_point)}`);
  if (doc.days_of_cover !== undefined && doc.days_of_cover !== null) parts.push(`${Number(doc.days_of_cover).toFixed(1)} days of cover`);
  parts.push(doc.stockout_date ? `stockout ${doc.stockout_date}` : "no stockout ahead");
  if (doc.method) parts.push(`method ${doc.method}`);
  if (doc.trend) parts.push(`trend ${doc.trend}`);
  return parts.join(" · ");
}

function chooseSku(sku) {
  state.forecastSku = sku;
  $("forecast-sku").value = sku;
  loadForecast(sku);
}

$("forecast-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const sku = $("forecast-sku").value.trim();
  if (sku) chooseSku(sku);
});

// A click on any row or alert naming a SKU shows its forecast.
for (const id of ["levels", "low-stock", "alerts"]) {
  $(id).addEventListener("click", (event) => {
    const target = event.target.closest("[data-sku]");
    if (target) chooseSku(target.dataset.sku);
  });
}

// ------------------------------------------------------------------ start
if (session.token && !session.expired()) startBoard();
else showSignIn();
