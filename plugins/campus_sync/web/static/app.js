// Resync State Data page: vanilla JS over the page's JSON API (same origin, session cookie).
// The server checks every right again; buttons are only disabled here as a courtesy.
"use strict";
(function () {
  const BASE = document.currentScript.src.replace(/static\/app\.js.*$/, "");
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const state = { catalog: null, me: null, district: null, historyPage: 1, selPage: 1, polls: {} };

  function esc(v) {
    return String(v == null ? "" : v).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  function fmt(ts) {
    if (!ts) return "";
    const d = new Date(ts);
    const p = (n) => String(n).padStart(2, "0");
    return `${p(d.getMonth() + 1)}/${p(d.getDate())}/${d.getFullYear()} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }
  function flash(msg, ok) {
    const el = $("#flash");
    el.textContent = msg || "";
    el.className = ok ? "ok" : "";
  }
  async function api(path, opts) {
    opts = opts || {};
    const init = { credentials: "same-origin", headers: { Accept: "application/json" } };
    if (opts.body !== undefined) {
      init.method = opts.method || "POST";
      init.headers["Content-Type"] = "application/json";
      init.headers["X-Campus-Sync"] = "1";
      init.body = JSON.stringify(opts.body);
    }
    const resp = await fetch(BASE + path, init);
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) {
      let detail = data && data.detail !== undefined ? data.detail : resp.statusText;
      if (typeof detail !== "string") detail = JSON.stringify(detail);
      const err = new Error(`${resp.status}: ${detail}`);
      err.status = resp.status;
      throw err;
    }
    return data;
  }
  function confirmDialog(title, html, okLabel) {
    return new Promise((resolve) => {
      const dlg = $("#confirm");
      $("#confirm-title").textContent = title;
      $("#confirm-body").innerHTML = html;
      $("#confirm-ok").textContent = okLabel || "OK";
      dlg.onclose = () => resolve(dlg.returnValue === "ok");
      dlg.returnValue = "";
      dlg.showModal();
    });
  }

  // ------------------------------------------------------------------ tabs and district
  function showTab(name) {
    $$(".tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
    $$(".tab").forEach((t) => t.classList.toggle("active", t.id === "tab-" + name));
    localStorage.setItem("campusSync.tab", name);
    refresh(name);
  }
  function refresh(name) {
    const run = { resync: loadResync, history: loadHistory, selective: loadSelective, verification: loadVerification, alerts: loadAlerts }[name];
    if (run) run().catch((e) => flash(e.message));
  }
  function currentTab() { return ($(".tabs button.active") || {}).dataset?.tab || "resync"; }

  // ------------------------------------------------------------------ Resync
  function yearInfo() { return state.catalog.years[$("#school-year").value]; }
  function resultCell(r) {
    if (!r.last_resync) return '<span class="muted">never resynced</span>';
    const reasons = r.error_reasons || [];
    const tip = reasons.map(([k, v]) => `${k}: ${v}`).join("\n");
    let html = `<span title="${esc(tip || "no errors")}">Processed: ${r.processed} Errors: ${r.errors}</span>`;
    if (reasons.length) {
      html += `<details class="reasons"><summary>error reasons</summary><ul>${reasons.map(([k, v]) => `<li>${esc(k)}: ${v}</li>`).join("")}</ul></details>`;
    }
    if (r.message) html += `<div class="muted">${esc(r.message)}</div>`;
    return html;
  }
  function statusCell(status) {
    if (status === "failed" || status === "not_run") return `<span class="tag ${status}" data-status="${status}">${status}</span>`;
    const title = { green: "finished without errors", yellow: "errors \u2264 1 %", red: "errors > 1 %", gray: "in progress", none: "no resync yet" }[status] || status;
    return `<span class="dot ${esc(status)}" data-status="${esc(status)}" title="${title}"></span>`;
  }
  async function loadResync() {
    const y = yearInfo();
    $("#year-label").textContent = `(${y.label})`;
    const data = await api(`api/resync?district=${encodeURIComponent(state.district)}&school_year=${$("#school-year").value}`);
    const ticked = new Set($$("input.pick:checked").map((c) => c.dataset.object));
    const tbody = $("#resync-table tbody");
    tbody.innerHTML = data.rows.map((r) => `<tr data-object="${esc(r.object)}" data-status="${esc(r.status)}">
        <td><input type="checkbox" class="pick" data-object="${esc(r.object)}" aria-label="${esc(r.object)}" ${ticked.has(r.object) ? "checked" : ""}></td>
        <td>${esc(r.object)}</td><td>${fmt(r.last_resync)}</td><td>${resultCell(r)}</td><td>${statusCell(r.status)}</td></tr>`).join("");
    syncPickAll();
  }
  function onPick(ev) {
    const box = ev.target;
    if (!box.classList.contains("pick")) return;
    if (box.checked && $("#check-deps").checked) {
      const obj = yearInfo().objects.find((o) => o.name === box.dataset.object);
      (obj ? obj.ancestors : []).forEach((a) => {
        const c = $(`input.pick[data-object="${CSS.escape(a)}"]`);
        if (c) c.checked = true;
      });
    }
    syncPickAll();
  }
  function syncPickAll() {
    const boxes = $$("input.pick");
    $("#pick-all").checked = boxes.length > 0 && boxes.every((b) => b.checked);
  }
  function sendDistricts() {
    const picked = $$("#send-districts input:checked").map((c) => c.value);
    return picked.length ? picked : [state.district];
  }
  function resyncBody() {
    return {
      objects: $$("input.pick:checked").map((c) => c.dataset.object),
      check_dependencies: $("#check-deps").checked,
      districts: sendDistricts(),
      school_year: $("#school-year").value,
      requested_by: $("#requested-by").value,
    };
  }
  function planHtml(plan) {
    const added = new Set(plan.added);
    const stages = plan.stages.map((s, i) => `<div class="plan-stage"><b>${i + 1}.</b> ${s.map((o) => added.has(o) ? `<i title="added by Check dependencies">${esc(o)}</i>` : esc(o)).join(", ")}</div>`).join("");
    return `<p>${plan.kind === "full" ? "<b>Full resync</b> (every object)" : `<b>${esc(plan.kind === "state_request" ? "State-requested resync" : "Partial resync")}</b>`}
      of <b>${plan.objects.length}</b> object(s) for district(s) <b id="plan-districts">${plan.districts.map(esc).join(", ")}</b>,
      ${esc(plan.school_year)} school year (${esc(plan.school_year_label)}), DAG <code>${esc(plan.dag_id)}</code>.</p>
      <p>Objects in run order (<i>italic</i>: parents added by Check dependencies):</p><div id="plan-objects">${stages}</div>
      <p class="muted">Performing a manual resync may slow system performance.</p>`;
  }
  async function sendResync() {
    flash("");
    const body = resyncBody();
    if (!body.objects.length) { flash("Select at least one object to resync."); return; }
    let plan;
    try { plan = await api("api/plan", { body }); } catch (e) { flash(e.message); return; }
    if (!(await confirmDialog("Send Resync?", planHtml(plan), "OK"))) return;
    try {
      const run = await api("api/resync", { body });
      watchRun("#resync-progress", run.dag_id, run.dag_run_id, () => loadResync());
      loadResync();
    } catch (e) { flash(e.message); }
  }
  function watchRun(sel, dagId, runId, onDone) {
    const el = $(sel);
    el.hidden = false;
    el.className = "progress";
    el.dataset.state = "queued";
    el.innerHTML = `Run <code>${esc(runId)}</code> of <code>${esc(dagId)}</code>: queued`;
    if (state.polls[sel]) clearInterval(state.polls[sel]);
    const tick = async () => {
      let p;
      try { p = await api(`api/progress?dag_id=${encodeURIComponent(dagId)}&run_id=${encodeURIComponent(runId)}`); } catch (e) { el.textContent = e.message; return; }
      const b = p.batch;
      const done = b ? ` \u2014 request ${b.id}: ${b.done} of ${b.total} object results recorded${b.running ? `, ${b.running} running` : ""}` : "";
      el.dataset.state = p.state;
      el.innerHTML = `Run <code>${esc(runId)}</code> of <code>${esc(dagId)}</code>: <b class="run-state">${esc(p.state)}</b>${esc(done)}`;
      if (p.state === "success" || p.state === "failed") {
        clearInterval(state.polls[sel]);
        delete state.polls[sel];
        el.classList.add(p.state === "success" ? "ok" : "bad");
        if (onDone) onDone(p);
      } else if (currentTab() === "resync" && sel === "#resync-progress") {
        loadResync().catch(() => {});
      }
    };
    state.polls[sel] = setInterval(tick, 2000);
    tick();
  }

  // ------------------------------------------------------------------ History
  function details(b) {
    const parts = [];
    if (b.kind === "selective") {
      parts.push(`Object: ${esc((b.details || {}).object || b.objects[0] || "")}`);
      parts.push(`Keys: ${esc(((b.details || {}).keys || []).join(" "))}`);
      parts.push(`<b class="records">Records: ${esc(b.records || "-")}</b>`);
    } else {
      const req = b.requested || [];
      parts.push(`Objects: ${esc(req.slice(0, 6).join(", "))}${req.length > 6 ? ` and ${req.length - 6} more` : ""}${b.objects.length > req.length ? ` (${b.objects.length} with parents)` : ""}`);
    }
    parts.push(`Districts: ${esc((b.districts || []).join(", "))}`);
    parts.push(`School year: ${esc(b.school_year)} (${b.end_year})`);
    if (b.completed_at) parts.push(`Completed: ${fmt(b.completed_at)}`);
    return parts.join("<br>");
  }
  async function loadHistory() {
    const kind = $("#history-kind").value;
    const only = $("#history-this-district").checked ? state.district : "";
    const q = `page=${state.historyPage}&per_page=20&kind=${encodeURIComponent(kind)}&district=${encodeURIComponent(only)}`;
    const data = await api(`api/history?${q}`);
    $("#history-csv").href = `${BASE}api/history.csv?kind=${encodeURIComponent(kind)}&district=${encodeURIComponent(only)}`;
    $("#history-table tbody").innerHTML = data.items.map((b) => `<tr class="clickable" data-batch="${b.id}" data-kind="${esc(b.kind)}">
      <td>${fmt(b.requested_at)}</td><td>${esc(b.requested_by)}</td><td>${esc(b.kind)}</td>
      <td><span class="tag ${esc(b.status)}">${esc(b.status)}</span></td><td>${details(b)}</td></tr>`).join("")
      || '<tr><td colspan="5" class="muted">No requests (the history is empty or was cleared).</td></tr>';
    $("#history-page").textContent = `Page ${data.page} of ${data.pages} (${data.total} requests)`;
    $("#history-prev").disabled = data.page <= 1;
    $("#history-next").disabled = data.page >= data.pages;
  }
  async function showBatch(id, district) {
    const d = await api(`api/history/${id}` + (district ? `?district=${encodeURIComponent(district)}` : ""));
    const el = $("#history-detail");
    el.hidden = false;
    const opts = (d.districts || []).map((x) => `<option ${x === d.district ? "selected" : ""}>${esc(x)}</option>`).join("");
    el.innerHTML = `<h3>Request ${d.id}: ${esc(d.kind)}, ${esc(d.status)}, by ${esc(d.requested_by)} on ${fmt(d.requested_at)}</h3>
      <label>District <select id="detail-district" data-batch="${d.id}">${opts}</select></label>
      <a href="${BASE}api/history/${d.id}/results.csv?district=${encodeURIComponent(d.district || "")}">Download CSV</a>
      ${d.kind === "selective" ? ` <a href="${BASE}api/selective/${d.id}/report.pdf">Report (PDF)</a> <a href="${BASE}api/selective/${d.id}/report.csv">Report (CSV)</a>` : ""}
      <table class="grid" id="detail-table"><thead><tr><th>Object</th><th>Status</th><th>Started</th><th class="num">Processed</th><th class="num">Errors</th>
      <th class="num">Inserted</th><th class="num">Updated</th><th class="num">Deleted</th><th class="num">Unchanged</th><th>Error reasons</th></tr></thead><tbody>
      ${d.results.map((r) => `<tr data-object="${esc(r.object)}"><td>${esc(r.object)}</td><td>${statusCell(r.status)}</td><td>${fmt(r.started_at)}</td>
        <td class="num">${r.processed}</td><td class="num">${r.errors}</td><td class="num">${r.inserted}</td><td class="num">${r.updated}</td>
        <td class="num">${r.deleted}</td><td class="num">${r.unchanged}</td><td>${r.error_reasons.map(([k, v]) => `${esc(k)}: ${v}`).join("<br>")}${r.message ? `<div class="muted">${esc(r.message)}</div>` : ""}</td></tr>`).join("")}
      </tbody></table>`;
    $("#detail-district").onchange = (e) => showBatch(id, e.target.value).catch((x) => flash(x.message));
  }
  async function clearHistory() {
    flash("");
    let counts;
    try { counts = await api("api/history/clear"); } catch (e) { flash(e.message); return; }
    const ok = await confirmDialog("Clear History?", `<p>This deletes <b>${counts.requests}</b> finished request(s), their
      <b>${counts.object_results}</b> object result(s) and <b>${counts.id_results}</b> selective ID result(s) from the history.
      Running requests, synced data and verification results are kept.</p>`, "Clear History");
    if (!ok) return;
    try {
      const r = await api("api/history/clear", { body: { confirm: true } });
      flash(`History cleared: ${r.deleted.requests} request(s) deleted.`, true);
      state.historyPage = 1;
      $("#history-detail").hidden = true;
      loadHistory();
    } catch (e) { flash(e.message); }
  }

  // ------------------------------------------------------------------ Selective Sync
  async function loadSelective() {
    const data = await api(`api/history?kind=selective&per_page=10&page=${state.selPage}`);
    $("#selective-table tbody").innerHTML = data.items.map((b) => {
      const det = b.details || {};
      return `<tr data-batch="${b.id}"><td>${fmt(b.requested_at)}</td><td>${esc(b.requested_by)}</td>
        <td><b class="tag ${esc(b.status)}">${esc(b.status)}</b> Requested: ${fmt(b.requested_at)} Completed: ${fmt(b.completed_at)}
        Keys: ${esc((det.keys || []).join(" "))} Object: ${esc(det.object || "")} District: ${esc((b.districts || []).join(", "))}
        <b class="records">Records: ${esc(b.records || "-")}</b></td>
        <td><a class="pdf" href="${BASE}api/selective/${b.id}/report.pdf">PDF</a> <a class="csv" href="${BASE}api/selective/${b.id}/report.csv">CSV</a></td></tr>`;
    }).join("") || '<tr><td colspan="4" class="muted">No selective syncs yet.</td></tr>';
    $("#sel-page").textContent = `Page ${data.page} of ${data.pages}`;
    $("#sel-prev").disabled = data.page <= 1;
    $("#sel-next").disabled = data.page >= data.pages;
  }
  async function selectiveSync(ev) {
    ev.preventDefault();
    flash("");
    const body = { object: $("#sel-object").value, ids: $("#sel-ids").value, district: $("#sel-district").value };
    try {
      const run = await api("api/selective", { body });
      watchRun("#selective-progress", run.dag_id, run.dag_run_id, () => loadSelective());
      loadSelective();
    } catch (e) { flash(e.message); }
  }

  // ------------------------------------------------------------------ Verification
  async function loadVerification() {
    const v = await api(`api/verification?district=${encodeURIComponent(state.district)}`);
    $("#verify-title").textContent = v.label ? `${v.label} Verification Results` : "No verification has run yet: press Re-Verify";
    $("#verify-districts tbody").innerHTML = v.districts.map((d) => `<tr data-district="${esc(d.district_id)}"><td>${esc(d.district_id)}</td><td>${esc(d.name)}</td>
      <td class="accuracy">${Number(d.overall_accuracy).toFixed(2)}%</td></tr>`).join("");
    const d = v.district;
    $("#verify-district-title").textContent = d ? `Verification Results for ${d.district_id} ${d.name}` : "";
    $("#verify-objects tbody").innerHTML = d ? d.objects.map((o) => `<tr data-object="${esc(o.object)}"><td>${esc(o.object)}</td>
      <td class="accuracy">${Number(o.accuracy).toFixed(2)}%</td><td>${fmt(o.verified_at)}</td><td class="num">${o.distinct}</td>
      <td class="num">${o.at_district}</td><td class="num">${o.at_state}</td><td class="num">${o.total_errors}</td></tr>`).join("") : "";
    $("#verify-issues tbody").innerHTML = v.issues.map((i) => `<tr><td>${esc(i.object)}</td><td>${esc(i.issue)}</td><td>${esc(i.key_text)}</td>
      <td>${esc(i.heal_key == null ? "" : i.heal_key)}</td></tr>`).join("") || '<tr><td colspan="4" class="muted">No mismatched records.</td></tr>';
  }
  async function reverify() {
    flash("");
    try {
      const run = await api("api/verification/run", { body: { districts: [state.district] } });
      watchRun("#verify-progress", run.dag_id, run.dag_run_id, () => loadVerification());
    } catch (e) { flash(e.message); }
  }

  // ------------------------------------------------------------------ Process Alerts
  async function loadAlerts() {
    const a = await api(`api/alerts?district=${encodeURIComponent(state.district)}`);
    $("#alerts-table tbody").innerHTML = a.alerts.map((x) => `<tr><td>${esc(x.category)}</td><td>${esc(x.name)}</td>
      <td>${fmt(x.requested_at)}</td><td>${esc(x.message)}</td></tr>`).join("") || '<tr><td colspan="4" class="muted">No process alerts.</td></tr>';
  }

  // ------------------------------------------------------------------ start
  async function start() {
    try {
      [state.me, state.catalog] = await Promise.all([api("api/me"), api("api/catalog")]);
    } catch (e) { flash(e.message); return; }
    const r = state.me.rights;
    $("#whoami").textContent = `${state.me.user} \u2014 rights: R${r.write_resync || r.write_selective ? "W" : ""}${r.delete ? "D" : ""}`;
    const ds = state.catalog.districts;
    const saved = localStorage.getItem("campusSync.district");
    state.district = ds.some((d) => d.id === saved) ? saved : ds[0].id;
    const opts = ds.map((d) => `<option value="${esc(d.id)}">${esc(d.label)}</option>`).join("");
    $("#district").innerHTML = opts;
    $("#sel-district").innerHTML = opts;
    $("#district").value = state.district;
    $("#sel-district").value = state.district;
    $("#send-districts").innerHTML = ds.map((d) => `<label><input type="checkbox" value="${esc(d.id)}" ${d.id === state.district ? "checked" : ""}> ${esc(d.label)}</label>`).join("");
    $("#sel-object").innerHTML = state.catalog.selective.map((o) => `<option value="${esc(o.name)}">${esc(o.name)} (by ${esc(o.key)})</option>`).join("");
    $("#send-resync").disabled = !r.write_resync;
    $("#sel-sync").disabled = !r.write_selective;
    $("#reverify").disabled = !r.write_verification;
    if (!r.write_resync) $("#send-resync").title = "Write rights needed";
    if (!r.delete) $("#clear-history").title = "Delete rights needed (the server refuses)";

    $("#district").onchange = (e) => {
      state.district = e.target.value;
      localStorage.setItem("campusSync.district", state.district);
      $$("#send-districts input").forEach((c) => { c.checked = c.value === state.district; });
      $("#sel-district").value = state.district;
      refresh(currentTab());
    };
    $$(".tabs button").forEach((b) => { b.onclick = () => showTab(b.dataset.tab); });
    $("#resync-table").addEventListener("change", onPick);
    $("#pick-all").onchange = (e) => { $$("input.pick").forEach((c) => { c.checked = e.target.checked; }); };
    $("#school-year").onchange = () => { $$("input.pick").forEach((c) => { c.checked = false; }); loadResync().catch((e) => flash(e.message)); };
    $("#legend-link").onclick = (e) => { e.preventDefault(); $("#legend").hidden = !$("#legend").hidden; };
    $("#send-resync").onclick = sendResync;
    $("#history-kind").onchange = () => { state.historyPage = 1; loadHistory().catch((e) => flash(e.message)); };
    $("#history-this-district").onchange = $("#history-kind").onchange;
    $("#history-prev").onclick = () => { state.historyPage -= 1; loadHistory().catch((e) => flash(e.message)); };
    $("#history-next").onclick = () => { state.historyPage += 1; loadHistory().catch((e) => flash(e.message)); };
    $("#history-table").addEventListener("click", (e) => {
      const tr = e.target.closest("tr[data-batch]");
      if (tr) showBatch(tr.dataset.batch).catch((x) => flash(x.message));
    });
    $("#clear-history").onclick = clearHistory;
    $("#selective-form").onsubmit = selectiveSync;
    $("#sel-prev").onclick = () => { state.selPage -= 1; loadSelective().catch((e) => flash(e.message)); };
    $("#sel-next").onclick = () => { state.selPage += 1; loadSelective().catch((e) => flash(e.message)); };
    $("#reverify").onclick = reverify;
    const tab = localStorage.getItem("campusSync.tab");
    showTab(["resync", "history", "selective", "verification", "alerts"].includes(tab) ? tab : "resync");
    document.body.dataset.ready = "1";
  }
  start();
})();
