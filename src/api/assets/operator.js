
"use strict";
// The operator page: reads the admin API with the key the operator typed in and draws the
// queue, a chart and the deliveries. Every value from the server goes into the page as text
// (text nodes, textContent), never as HTML.
(function () {
  const KEY = "hookd.apiKey";
  const REFRESH_MS = 5000;
  const SVG = "http://www.w3.org/2000/svg";
  const state = {
    timer: null, open: new Set(), names: new Map(), states: new Map(), loading: false, lists: null, signatures: {},
    // Whether the key may change anything: a viewer key gets no buttons that would.
    canRepair: false,
  };
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null) continue;
      if (name === "class") node.className = value;
      else if (name === "onclick") node.addEventListener("click", value);
      else node.setAttribute(name, String(value));
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : String(child ?? ""));
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return seconds + "s";
    const m = Math.floor(seconds / 60), s = seconds % 60;
    if (m < 60) return m + "m " + String(s).padStart(2, "0") + "s";
    const h = Math.floor(m / 60);
    if (h < 48) return h + "h " + String(m % 60).padStart(2, "0") + "m";
    return Math.floor(h / 24) + "d " + String(h % 24).padStart(2, "0") + "h";
  }

  function when(iso) {
    if (!iso) return "–";
    const diff = (Date.parse(iso) - Date.now()) / 1000;
    if (Math.abs(diff) < 1) return "now";
    return diff > 0 ? "in " + duration(diff) : duration(-diff) + " ago";
  }

  function clock(iso) {
    return iso ? new Date(iso).toLocaleTimeString() : "–";
  }

  class Unauthorized extends Error {}
  class Forbidden extends Error {}

  async function api(method, path, body) {
    const key = sessionStorage.getItem(KEY);
    const headers = { Authorization: "Bearer " + key };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
    if (response.status === 401) throw new Unauthorized();
    if (response.status === 403) throw new Forbidden();
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (!response.ok) {
      const message = data && data.error ? data.error.message : response.statusText;
      throw new Error(method + " " + path + ": " + response.status + " " + message);
    }
    return data;
  }

  function showLogin(message) {
    clearTimeout(state.timer);
    state.timer = null;
    sessionStorage.removeItem(KEY);
    $("dashboard").hidden = true;
    $("forget").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("updated").textContent = "";
    $("key-input").focus();
  }

  function showDashboard() {
    $("login").hidden = true;
    $("dashboard").hidden = false;
    $("forget").hidden = false;
  }

  async function refresh() {
    clearTimeout(state.timer);
    if (state.loading) return;
    state.loading = true;
    try {
      const [me, queue, chart, failing, recent] = await Promise.all([
        api("GET", "/api/me"),
        api("GET", "/api/admin/queue"),
        api("GET", "/api/admin/throughput"),
        api("GET", "/api/admin/deliveries?status=failed&limit=20"),
        api("GET", "/api/admin/deliveries?limit=20"),
      ]);
      showDashboard();
      state.canRepair = me.role === "admin";
      $("role").textContent = me.role === "admin" ? "" : "Read only: this is a " + me.role + " key.";
      state.names = new Map(queue.webhooks.map((w) => [w.webhookId, w.name]));
      state.states = new Map(queue.webhooks.map((w) => [w.webhookId, w.state]));
      drawTotals(queue);
      drawWriter(queue.writer);
      drawMessages(queue.messages);
      drawChart(chart.minutes);
      drawWebhooks(queue.webhooks);
      state.lists = { failing: failing.items, recent: recent.items };
      drawLists();
      $("error").textContent = "";
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (error) {
      if (error instanceof Unauthorized) {
        showLogin("The server refused this key.");
        return;
      }
      if (error instanceof Forbidden) {
        showLogin("This key's role cannot read the queue: use an admin or a viewer key.");
        return;
      }
      $("error").textContent = "Could not refresh: " + error.message;
    } finally {
      state.loading = false;
    }
    if (sessionStorage.getItem(KEY)) state.timer = setTimeout(refresh, REFRESH_MS);
  }

  function drawTotals(queue) {
    const items = [
      ["Pending", queue.totals.pending],
      ["Delivering", queue.totals.delivering],
      ["Succeeded", queue.totals.succeeded],
      ["Failed", queue.totals.failed],
      ["Oldest pending", queue.oldestPendingAgeSeconds == null ? "–" : duration(queue.oldestPendingAgeSeconds)],
      ["Disabled webhooks", queue.disabledWebhooks],
      ["Expired claims", queue.expiredClaims,
        "Attempts past their lease that will never report; hookd releases and sends them again."],
    ];
    $("totals").replaceChildren(...items.map(([label, value, title]) =>
      el("div", { title }, el("dt", {}, label), el("dd", { "data-total": label.toLowerCase() }, value))));
  }

  // One line on the store's writer, so an operator sees it saturate: the mean COMMIT time
  // and how many writes share one, over the last minute.
  function drawWriter(writer) {
    const line = $("writer");
    if (!writer) {
      line.textContent = "";
      return;
    }
    if (writer.batches === 0) {
      line.textContent = "writer: no commits in the last minute";
      line.title = "";
      return;
    }
    const perBatch = writer.jobsPerBatch < 10 ? writer.jobsPerBatch.toFixed(1) : Math.round(writer.jobsPerBatch);
    line.textContent = `writer: ${writer.commitMs.toFixed(1)} ms commits, ${perBatch} per batch`;
    line.title = `Last minute: ${writer.batches} commits of ${writer.jobs} writes; ` +
      (writer.durableCommitMs == null ? "none durable" : `durable ones (with their fsync) ${writer.durableCommitMs.toFixed(1)} ms`) +
      `; at most ${writer.mostWaiting} writes waiting.`;
  }

  // Emails and SMS (SPEC §10): one line per configured channel, failed ones first in mind.
  function drawMessages(messages) {
    const parts = [["email", messages && messages.email], ["sms", messages && messages.sms]]
      .filter(([, counts]) => counts)
      .map(([name, c]) => `${name} ${c.queued} queued, ${c.failed} failed, ${c.sent} sent`);
    $("messages").textContent = parts.length ? `messages: ${parts.join("; ")}` : "";
  }

  function drawChart(minutes) {
    const width = 720, height = 180, left = 34, bottom = 20, top = 8;
    const plot = height - bottom - top;
    const max = Math.max(1, ...minutes.map((m) => m.succeeded + m.retry + m.failed));
    const step = (width - left) / minutes.length;
    const scale = (n) => (n / max) * plot;
    const total = minutes.reduce((sum, m) => sum + m.succeeded + m.retry + m.failed, 0);
    const chart = svg("svg", {
      id: "throughput-chart", viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": `${total} deliveries in the last hour, at most ${max} in one minute`,
      "data-total": total,
    });
    for (const fraction of [0, 0.5, 1]) {
      const y = top + plot - fraction * plot;
      chart.append(svg("line", { class: "axis", x1: left, x2: width, y1: y, y2: y }));
      chart.append(svg("text", { x: left - 4, y: y + 4, "text-anchor": "end" },
        String(Math.round(fraction * max))));
    }
    minutes.forEach((m, i) => {
      const x = left + i * step + 1;
      let y = top + plot;
      const group = svg("g", { "data-minute": m.minute });
      group.append(svg("title", {},
        `${clock(m.minute)}: ${m.succeeded} delivered, ${m.retry} to try again, ${m.failed} failed for good`));
      for (const outcome of ["succeeded", "retry", "failed"]) {
        const h = scale(m[outcome]);
        if (h <= 0) continue;
        y -= h;
        group.append(svg("rect", { class: "bar " + outcome, x, y, width: Math.max(1, step - 2), height: h }));
      }
      chart.append(group);
      if (i % 10 === 0 || i === minutes.length - 1) {
        const last = i === minutes.length - 1;
        const label = last ? "now" : `-${minutes.length - 1 - i}m`;
        chart.append(svg("text", {
          x: last ? width : x + step / 2, y: height - 5, "text-anchor": last ? "end" : "middle",
        }, label));
      }
    });
    $("chart").replaceChildren(chart);
  }

  function badge(text) {
    return el("span", { class: "badge " + text }, text);
  }

  // The streak, and why it can differ from the one in the disabled reason: deliveries already
  // in flight when hookd disabled the webhook still end, and each that fails counts.
  function streakCell(w) {
    const cell = el("td", { class: "num streak" }, w.consecutiveFailures);
    const at = w.failuresWhenDisabled;
    if (w.state !== "disabled" || at == null || at === w.consecutiveFailures) return cell;
    const more = w.consecutiveFailures - at;
    let why;
    if (more < 0) why = `${at} when disabled; a delivery in flight succeeded since`;
    else if (at > 0) why = `disabled after ${at}; ${more} more already in flight failed too`;
    else why = `${more} already in flight when it was disabled failed since`;
    cell.append(el("span", { class: "sub" }, why));
    return cell;
  }

  function drawWebhooks(webhooks) {
    const rows = webhooks.map((w) => {
      const paused = w.state !== "active" && w.counts.pending > 0;
      const stateCell = el("td", { class: "state" }, badge(w.state));
      if (w.disabledReason) stateCell.append(el("span", { class: "sub" }, w.disabledReason + " (" + when(w.disabledAt) + ")"));
      // The remedy sits beside the state it repairs, not in a last column that a wide
      // table pushes out of view.
      if (w.state !== "active" && state.canRepair) {
        stateCell.append(el("button", {
          type: "button", class: "enable", "data-webhook-id": w.webhookId,
          onclick: (event) => act(event.currentTarget, "PATCH",
            `/api/surveys/${encodeURIComponent(w.surveyId)}/webhooks/${encodeURIComponent(w.webhookId)}`,
            { isActive: true }, `Webhook ${w.name} is active again.`),
        }, "Re-enable"));
      }
      return el("tr", { "data-webhook-id": w.webhookId, "data-state": w.state },
        el("td", { class: "name" }, w.name, el("span", { class: "sub mono url" }, w.url)),
        stateCell,
        el("td", { class: "ordering" }, w.ordering),
        streakCell(w),
        el("td", { class: "num" }, w.counts.pending),
        el("td", { class: "num delivering" }, w.counts.delivering, w.expiredClaims > 0
          ? el("span", { class: "sub expired" }, w.expiredClaims + " past lease") : ""),
        el("td", { class: "num" }, w.counts.succeeded),
        el("td", { class: "num" }, w.counts.failed),
        el("td", {}, w.oldestPendingAgeSeconds == null ? "–" : duration(w.oldestPendingAgeSeconds)),
        el("td", { class: "next" }, paused ? "paused" : due(w.nextAttemptAt)));
    });
    if (rows.length === 0) rows.push(el("tr", {}, el("td", { class: "empty", colspan: 10 }, "No webhooks.")));
    $("webhooks").tBodies[0].replaceChildren(...rows);
  }

  function drawLists() {
    drawDeliveries($("failing"), state.lists.failing, "No failed deliveries.");
    drawDeliveries($("recent"), state.lists.recent, "No deliveries yet.");
  }

  // A next attempt in the past means "due now" on a webhook that is on, and nothing at all
  // on one that is off: its deliveries wait, paused, until it is re-enabled.
  function due(iso) {
    if (!iso) return "–";
    return Date.parse(iso) <= Date.now() ? "due" : when(iso);
  }

  function nextOf(d) {
    if (d.status !== "pending") return "";
    const webhook = state.states.get(d.webhookId);
    if (webhook && webhook !== "active") {
      return el("span", { class: "sub paused" }, "paused: webhook " + webhook);
    }
    return d.nextAttemptAt ? el("span", { class: "sub" }, "next " + due(d.nextAttemptAt)) : "";
  }

  function lastResult(d) {
    if (d.lastStatusCode != null) return "HTTP " + d.lastStatusCode;
    if (d.lastError) return d.lastError;
    return "–";
  }

  function drawDeliveries(table, items, emptyText) {
    // Redraw only what changed, so a row does not vanish under the operator's pointer at
    // every refresh; lists with pending deliveries show relative times and always redraw.
    const signature = JSON.stringify([items, items.map((d) => state.open.has(d.id)), state.canRepair,
      [...state.names], [...state.states], items.some((d) => d.status === "pending") ? Date.now() : 0]);
    if (state.signatures[table.id] === signature) return;
    state.signatures[table.id] = signature;
    const rows = [];
    for (const d of items) {
      const open = state.open.has(d.id);
      const action = el("td", { class: "actions" },
        el("button", {
          type: "button", class: "toggle", "aria-expanded": open, "data-delivery-id": d.id,
          onclick: () => {
            if (state.open.has(d.id)) state.open.delete(d.id);
            else state.open.add(d.id);
            drawLists();
          },
        }, open ? "Hide attempts" : "Attempts"));
      if (state.canRepair && (d.status === "failed" || d.status === "succeeded")) {
        action.append(el("button", {
          type: "button", class: "retry", "data-delivery-id": d.id,
          onclick: (event) => act(event.currentTarget, "POST",
            `/api/surveys/${encodeURIComponent(d.surveyId)}/webhooks/${encodeURIComponent(d.webhookId)}` +
            `/deliveries/${encodeURIComponent(d.id)}/retry`, undefined, "Retry queued."),
        }, "Retry"));
      }
      rows.push(el("tr", { class: "delivery", "data-delivery-id": d.id, "data-status": d.status },
        el("td", {}, clock(d.createdAt), el("span", { class: "sub mono" }, d.id)),
        el("td", {}, state.names.get(d.webhookId) || d.webhookId),
        el("td", {}, d.eventType),
        el("td", {}, badge(d.status), nextOf(d)),
        el("td", { class: "num" }, d.attemptCount),
        el("td", {}, lastResult(d)),
        action));
      if (open) rows.push(el("tr", { class: "attempts", "data-attempts-of": d.id },
        el("td", { colspan: 7 }, ...attemptList(d.attempts))));
    }
    if (rows.length === 0) rows.push(el("tr", {}, el("td", { class: "empty", colspan: 7 }, emptyText)));
    table.tBodies[0].replaceChildren(...rows);
  }

  function attemptList(attempts) {
    if (!attempts.length) return [el("div", { class: "sub" }, "No attempt yet.")];
    return attempts.map((a) => {
      const result = a.statusCode != null ? "HTTP " + a.statusCode : (a.error || "no answer");
      const block = el("div", { class: "attempt" },
        el("strong", {}, "#" + a.attempt), " ", clock(a.startedAt), " · ", a.durationMs + " ms", " · ", result);
      if (a.error && a.statusCode != null) block.append(el("span", { class: "sub" }, a.error));
      if (a.responseBody) {
        block.append(el("pre", {}, a.responseBody + (a.responseTruncated ? "\n… (truncated)" : "")));
      }
      return block;
    });
  }

  async function act(button, method, path, body, done) {
    button.disabled = true;
    $("notice").textContent = "";
    try {
      await api(method, path, body);
      $("notice").textContent = done;
      refresh();
      // The change takes a moment to reach the receiver: look again shortly.
      setTimeout(refresh, 1000);
    } catch (error) {
      if (error instanceof Unauthorized) return showLogin("The server refused this key.");
      $("error").textContent = error.message;
      button.disabled = false;
    }
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY, key);
    $("key-input").value = "";
    refresh();
  });
  $("forget").addEventListener("click", () => showLogin(""));

  if (sessionStorage.getItem(KEY)) refresh();
  else showLogin("");
})();
