// Resync State Data page: vanilla JS over the page's JSON API (same origin, session cookie).
// The server checks every right again; buttons are only disabled here as a courtesy.
"use strict";
(function () {
  const BASE = document.currentScript.src.replace(/static\/app\.js.*$/, "");
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const state = { catalog: null, me: null, district: null, historyPage: 1, selPage: 1, polls: {}, dags: {} };

  // Every value written into HTML goes through esc(), numbers and ids included: nothing from the
  // server or the URL reaches innerHTML unescaped (attributes are always double-quoted).
  function esc(v) {
    return String(v == null ? "" : v).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  // Times in the browser's time zone, always with the zone: "2026-10-01 10:00:00 UTC" or "... +02:00".
  function fmt(ts) {
    if (!ts) return "";
    const d = new Date(ts);
    if (isNaN(d.getTime())) return String(ts);
    const p = (n) => String(n).padStart(2, "0");
    const off = -d.getTimezoneOffset();
    const zone = off === 0 ? "UTC" : `${off > 0 ? "+" : "-"}${p(Math.floor(Math.abs(off) / 60))}:${p(Math.abs(off) % 60)}`;
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${zone}`;
  }
  function when(ts) { return ts ? `<time datetime="${esc(ts)}">${esc(fmt(ts))}</time>` : ""; }
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
  // `html` must be built with esc(); `onOpen(body)` may wire inputs of the dialog's body.
  function confirmDialog(title, html, okLabel, onOpen) {
    return new Promise((resolve) => {
      const dlg = $("#confirm");
      $("#confirm-title").textContent = title;
      $("#confirm-body").innerHTML = html;
      $("#confirm-ok").textContent = okLabel || "OK";
      $("#confirm-ok").disabled = false;
      dlg.onclose = () => resolve(dlg.returnValue === "ok");
      dlg.returnValue = "";
      dlg.showModal();
      if (onOpen) onOpen($("#confirm-body"));
    });
  }
  // The page's other scripts (edfi.js, loaded after this one) use these same helpers.
  window.CampusSync = Object.freeze({ BASE, $, $$, esc, fmt, when, api, confirmDialog });

  // ------------------------------------------------------------------ paused DAGs
  // New DAGs start paused, and a run of a paused DAG waits "queued" for ever: each tab says so
  // before the user acts, and offers to unpause (Airflow checks the user's edit right) or names who can.
  const TAB_DAGS = { resync: ["campus_partial_resync", "campus_full_resync"], selective: ["campus_selective_sync"],
    verification: ["campus_verification_summary"], edfi: ["edfi_resync"] };
  function dagNotice(d) {
    if (!d) return "";
    if (d.error) return `<div class="dag-warning" data-dag="${esc(d.dag_id)}">${esc(d.error)}</div>`;
    let html = "";
    if (d.is_paused) {
      html += `<div class="dag-warning paused" data-dag="${esc(d.dag_id)}"><b>${esc(d.dag_id)}</b> is paused in Airflow:
        runs that ${esc(d.action)} starts wait (queued) until it is unpaused.
        ${d.can_unpause ? `<button type="button" class="unpause" data-dag="${esc(d.dag_id)}">Unpause ${esc(d.dag_id)}</button>`
          : `<span class="who-can">You may not unpause it: ask ${esc(d.who_can_unpause)}.</span>`}</div>`;
    }
    if (d.max_active_runs && d.active_runs >= d.max_active_runs) {
      html += `<div class="dag-note muted" data-dag="${esc(d.dag_id)}">${esc(d.dag_id)} has ${esc(d.active_runs)} run(s) queued or running
        and runs at most ${esc(d.max_active_runs)} at a time (max_active_runs): a new run waits its turn.</div>`;
    }
    return html;
  }
  function renderDags() {
    Object.entries(TAB_DAGS).forEach(([tab, ids]) => {
      const el = $(`#dags-${tab}`);
      if (el) el.innerHTML = ids.map((id) => dagNotice(state.dags[id])).join("");
    });
  }
  async function loadDags() {
    const r = await api("api/dags");
    state.dags = r.dags;
    renderDags();
    return r.dags;
  }
  async function unpause(dagId) {
    flash("");
    try {
      await api(`api/dags/${encodeURIComponent(dagId)}/unpause`, { body: {} });
      flash(`${dagId} unpaused: its queued runs start now.`, true);
    } catch (e) { flash(e.message); }
    loadDags().catch((e) => flash(e.message));
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
    if (TAB_DAGS[name]) loadDags().catch((e) => flash(e.message));
  }
  function currentTab() { return ($(".tabs button.active") || {}).dataset?.tab || "resync"; }

  // ------------------------------------------------------------------ Resync
  function yearInfo() { return state.catalog.years[$("#school-year").value]; }
  // A refusal reason: its code and, beside it, what it means (campus_sync.reasons on the server).
  function reasonItem([code, count, text]) {
    return `<li data-reason="${esc(code)}"><code>${esc(code)}</code>: ${esc(count)}${text ? ` <span class="reason-text">\u2014 ${esc(text)}</span>` : ""}</li>`;
  }
  function refusedNote(refused, batchId) {
    if (!refused) return "";
    const what = refused.guard === "empty_source"
      ? `the district has no accepted rows: it would delete all ${esc(refused.held)} rows the state holds`
      : `it would delete ${esc(refused.deleted)} of the ${esc(refused.held)} rows the state holds`;
    return `<div class="refused" data-deleted="${esc(refused.deleted)}" data-held="${esc(refused.held)}">Refused by the delete guard, nothing written:
      ${what}. <button type="button" class="review-deletes" data-batch="${esc(batchId)}">Review deletes\u2026</button></div>`;
  }
  function resultCell(r) {
    if (!r.last_resync) return '<span class="muted">never resynced</span>';
    const reasons = r.error_reasons || [];
    const tip = reasons.map(([k, v, t]) => `${k}: ${v}${t ? ` (${t})` : ""}`).join("\n");
    let html = `<span title="${esc(tip || "no errors")}">Processed: ${esc(r.processed)} Errors: ${esc(r.errors)}</span>`;
    if (reasons.length) {
      html += `<details class="reasons"><summary>error reasons</summary><ul>${reasons.map(reasonItem).join("")}</ul></details>`;
    }
    if (r.refused) html += refusedNote(r.refused, r.batch_id);
    else if (r.message) html += `<div class="muted">${esc(r.message)}</div>`;
    return html;
  }
  const STATUS_TITLES = { green: "finished without errors", yellow: "errors \u2264 1 %", red: "errors > 1 %", gray: "in progress",
    none: "no resync yet", failed: "the object's load rolled back", not_run: "an ancestor failed", abandoned: "its run died" };
  function statusCell(status) {
    const title = STATUS_TITLES[status] || status;
    if (status === "failed" || status === "not_run" || status === "abandoned") {
      return `<span class="tag ${esc(status)}" data-status="${esc(status)}" title="${esc(title)}">${esc(status)}</span>`;
    }
    return `<span class="dot ${esc(status)}" data-status="${esc(status)}" title="${esc(title)}"></span>`;
  }
  async function loadResync() {
    const y = yearInfo();
    $("#year-label").textContent = `(${y.label})`;
    const data = await api(`api/resync?district=${encodeURIComponent(state.district)}&school_year=${$("#school-year").value}`);
    const ticked = new Set($$("input.pick:checked").map((c) => c.dataset.object));
    const tbody = $("#resync-table tbody");
    tbody.innerHTML = data.rows.map((r) => `<tr data-object="${esc(r.object)}" data-status="${esc(r.status)}">
        <td><input type="checkbox" class="pick" data-object="${esc(r.object)}" aria-label="${esc(r.object)}" ${ticked.has(r.object) ? "checked" : ""}></td>
        <td><span class="obj">${esc(r.object)}</span><span class="added-note"> \u2014 added by Check Dependencies</span></td>
        <td>${when(r.last_resync)}</td><td>${resultCell(r)}</td><td>${statusCell(r.status)}</td></tr>`).join("");
    markAdded();
  }
  // Check Dependencies: the parents of the ticked objects are shown in italic as "added by Check
  // Dependencies" (as in the plan dialog), not ticked as if the user had chosen them; the server
  // adds them to the run.
  function markAdded() {
    const ticked = new Set($$("input.pick:checked").map((c) => c.dataset.object));
    const added = new Set();
    if ($("#check-deps").checked) {
      yearInfo().objects.filter((o) => ticked.has(o.name)).forEach((o) => o.ancestors.forEach((a) => { if (!ticked.has(a)) added.add(a); }));
    }
    $$("#resync-table tbody tr[data-object]").forEach((tr) => tr.classList.toggle("added", added.has(tr.dataset.object)));
    syncPickAll();
  }
  function onPick(ev) {
    if (ev.target.classList.contains("pick")) markAdded();
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
    const stages = plan.stages.map((s, i) => `<div class="plan-stage"><b>${i + 1}.</b> ${s.map((o) => added.has(o) ? `<i class="added" title="added by Check Dependencies">${esc(o)}</i>` : esc(o)).join(", ")}</div>`).join("");
    const dag = state.dags[plan.dag_id];
    const paused = dag && dag.is_paused ? `<p class="dag-warning paused" id="plan-paused"><b>${esc(plan.dag_id)}</b> is paused: this run will wait (queued)
      until it is unpaused${dag.can_unpause ? " (Unpause it on the Resync tab)" : `; ask ${esc(dag.who_can_unpause)}`}.</p>` : "";
    return `<p>${plan.kind === "full" ? "<b>Full resync</b> (every object)" : `<b>${esc(plan.kind === "state_request" ? "State-requested resync" : "Partial resync")}</b>`}
      of <b>${esc(plan.objects.length)}</b> object(s) for district(s) <b id="plan-districts">${plan.districts.map(esc).join(", ")}</b>,
      ${esc(plan.school_year)} school year (${esc(plan.school_year_label)}), DAG <code>${esc(plan.dag_id)}</code>.</p>
      <p>Objects in run order (<i>italic</i>: parents added by Check Dependencies):</p><div id="plan-objects">${stages}</div>
      ${paused}<p class="muted">Performing a manual resync may slow system performance.</p>`;
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
  // A run's progress; while it is queued, why (paused DAG, max_active_runs, scheduler down...);
  // when the delete guard refused some of its objects, their counts and the confirmation offer.
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
      let html = `Run <code>${esc(runId)}</code> of <code>${esc(dagId)}</code>: <b class="run-state">${esc(p.state)}</b>${esc(done)}`;
      if (p.waiting) {
        html += `<div class="waiting">${p.waiting.reasons.map((r) => `<div>${esc(r)}</div>`).join("")}
          ${p.waiting.paused && p.waiting.can_unpause ? `<button type="button" class="unpause" data-dag="${esc(dagId)}">Unpause ${esc(dagId)}</button>` : ""}</div>`;
      }
      if (b && b.refused && b.refused.length) html += refusedOffer(b.id, b.refused);
      el.innerHTML = html;
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

  // ------------------------------------------------------------------ confirming deletes
  // The engine refuses a resync that would delete more than the configured share of an object's
  // state rows (or empty it). A user with Delete rights may run exactly the refused objects again
  // with confirm_deletes=true, after seeing the counts; others are told who can.
  function refusedLine(x) {
    const what = x.guard === "empty_source"
      ? `no accepted rows at the district: would delete all <b>${esc(x.held)}</b> rows the state holds`
      : `would delete <b>${esc(x.deleted)}</b> of the <b>${esc(x.held)}</b> rows the state holds (${esc(Math.round(100 * x.deleted / Math.max(x.held, 1)))} %)`;
    return `<li data-district="${esc(x.district_id)}" data-object="${esc(x.object)}">District ${esc(x.district_id)}, <b>${esc(x.object)}</b>: ${what}</li>`;
  }
  function refusedOffer(batchId, refused) {
    const r = state.me.rights;
    const can = r.delete && r.write_resync;
    return `<div class="refused-offer" data-batch="${esc(batchId)}"><p>The delete guard refused ${esc(refused.length)} resync(s); nothing was written for them:</p>
      <ul>${refused.map(refusedLine).join("")}</ul>
      ${can ? `<button type="button" class="review-deletes" data-batch="${esc(batchId)}">Confirm these deletes\u2026</button>`
        : `<p class="muted">Confirming them needs Delete rights: a user with Delete rights can confirm them from this page.</p>`}</div>`;
  }
  async function reviewDeletes(batchId) {
    flash("");
    let got;
    try { got = await api(`api/history/${encodeURIComponent(batchId)}/refused`); } catch (e) { flash(e.message); return; }
    if (!got.refused.length) { flash(`Request ${batchId} has no refused deletes (they may have been confirmed since).`); return; }
    const r = state.me.rights;
    const can = r.delete && r.write_resync;
    const runs = got.reruns.map((x) => `<li>${esc(x.objects.join(", "))} for district(s) ${esc(x.districts.join(", "))}</li>`).join("");
    const html = `<p>Request ${esc(batchId)}: the delete guard refused these resyncs; nothing was written for them:</p>
      <ul id="refused-list">${got.refused.map(refusedLine).join("")}</ul>
      ${can ? `<p>OK resyncs only these objects again, for these districts, <b>allowing the deletes</b> (confirm_deletes=true),
        without adding parents (they ran in request ${esc(batchId)}):</p><ul>${runs}</ul>
        <p class="muted">Child objects that were not run because of the refusal are not included: resync them afterwards.</p>`
        : `<p id="refused-rights">Confirming these deletes needs Delete rights; you have none. Ask a user with Delete rights.</p>`}`;
    const ok = await confirmDialog("Confirm deletes?", html, can ? "Resync and delete" : "Close");
    if (!ok || !can) return;
    let run = null;
    try {
      for (const body of got.reruns) run = await api("api/resync", { body });
    } catch (e) { flash(e.message); return; }
    if (run) {
      showTab("resync");
      watchRun("#resync-progress", run.dag_id, run.dag_run_id, () => loadResync());
    }
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
    parts.push(`School year: ${esc(b.school_year)} (${esc(b.end_year)})`);
    if (b.completed_at) parts.push(`Completed: ${when(b.completed_at)}`);
    return parts.join("<br>");
  }
  async function loadHistory() {
    const kind = $("#history-kind").value;
    const only = $("#history-this-district").checked ? state.district : "";
    const q = `page=${state.historyPage}&per_page=20&kind=${encodeURIComponent(kind)}&district=${encodeURIComponent(only)}`;
    const data = await api(`api/history?${q}`);
    $("#history-csv").href = `${BASE}api/history.csv?kind=${encodeURIComponent(kind)}&district=${encodeURIComponent(only)}`;
    $("#history-table tbody").innerHTML = data.items.map((b) => `<tr class="clickable" data-batch="${esc(b.id)}" data-kind="${esc(b.kind)}">
      <td>${when(b.requested_at)}</td><td>${esc(b.requested_by)}</td><td>${esc(b.kind)}</td>
      <td><span class="tag ${esc(b.status)}">${esc(b.status)}</span></td><td>${details(b)}</td></tr>`).join("")
      || '<tr><td colspan="5" class="muted">No requests (the history is empty or was cleared).</td></tr>';
    $("#history-page").textContent = `Page ${data.page} of ${data.pages} (${data.total} requests)`;
    $("#history-prev").disabled = data.page <= 1;
    $("#history-next").disabled = data.page >= data.pages;
  }
  async function showBatch(id, district) {
    const d = await api(`api/history/${encodeURIComponent(id)}` + (district ? `?district=${encodeURIComponent(district)}` : ""));
    const el = $("#history-detail");
    el.hidden = false;
    const opts = (d.districts || []).map((x) => `<option ${x === d.district ? "selected" : ""}>${esc(x)}</option>`).join("");
    const bid = encodeURIComponent(d.id);
    const refused = d.results.some((r) => r.refused);
    el.innerHTML = `<h3>Request ${esc(d.id)}: ${esc(d.kind)}, ${esc(d.status)}, by ${esc(d.requested_by)} on ${when(d.requested_at)}</h3>
      <label>District <select id="detail-district" data-batch="${esc(d.id)}">${opts}</select></label>
      <a href="${esc(BASE)}api/history/${esc(bid)}/results.csv?district=${esc(encodeURIComponent(d.district || ""))}">Download CSV</a>
      ${d.kind === "selective" ? ` <a href="${esc(BASE)}api/selective/${esc(bid)}/report.pdf">Report (PDF)</a> <a href="${esc(BASE)}api/selective/${esc(bid)}/report.csv">Report (CSV)</a>` : ""}
      ${refused ? ` <button type="button" class="review-deletes" data-batch="${esc(d.id)}">Review refused deletes\u2026</button>` : ""}
      <table class="grid" id="detail-table"><thead><tr><th>Object</th><th>Status</th><th>Started</th><th class="num">Processed</th><th class="num">Errors</th>
      <th class="num">Inserted</th><th class="num">Updated</th><th class="num">Deleted</th><th class="num">Unchanged</th><th>Error reasons</th></tr></thead><tbody>
      ${d.results.map((r) => `<tr data-object="${esc(r.object)}"><td>${esc(r.object)}</td><td>${statusCell(r.status)}</td><td>${when(r.started_at)}</td>
        <td class="num">${esc(r.processed)}</td><td class="num">${esc(r.errors)}</td><td class="num">${esc(r.inserted)}</td><td class="num">${esc(r.updated)}</td>
        <td class="num">${esc(r.deleted)}</td><td class="num">${esc(r.unchanged)}</td><td><ul class="reasons">${r.error_reasons.map(reasonItem).join("")}</ul>${r.message ? `<div class="muted">${esc(r.message)}</div>` : ""}</td></tr>`).join("")}
      </tbody></table>`;
    $("#detail-district").onchange = (e) => showBatch(id, e.target.value).catch((x) => flash(x.message));
  }
  // Clear History: of the shown district (default) or every district, optionally only requests made
  // before a date; the dialog says what goes (counts, refreshed as the scope changes) and what stays.
  function clearScope(body) {
    const all = $("input[name=clear-scope]:checked", body).value === "all";
    const before = $("#clear-before", body).value || null;
    return { district: all ? null : state.district, before };
  }
  function clearCounts(c, scope) {
    const whose = scope.district ? `of district <b>${esc(scope.district)}</b>` : "of <b>every district</b>";
    const date = c.before ? ` made before <b>${esc(fmt(c.before))}</b>` : "";
    let html = `This deletes <b class="n-requests">${esc(c.requests)}</b> finished request(s) ${whose}${date},
      with <b>${esc(c.object_results)}</b> object result(s) and <b>${esc(c.id_results)}</b> selective ID result(s)`;
    if (c.shared_requests) {
      html += `; <b>${esc(c.shared_requests)}</b> request(s) of several districts lose only ${esc(scope.district)}'s results
        and stay listed for the others`;
    }
    return html + ".";
  }
  async function clearHistory() {
    flash("");
    const label = (state.catalog.districts.find((d) => d.id === state.district) || { label: state.district }).label;
    const html = `<fieldset class="clear-scope"><legend>Clear the history of</legend>
        <label><input type="radio" name="clear-scope" value="district" checked> district <b>${esc(label)}</b> (the district shown)</label>
        <label><input type="radio" name="clear-scope" value="all"> every district</label></fieldset>
      <p><label>Only requests made before <input type="date" id="clear-before"></label> <span class="muted">(empty: any date)</span></p>
      <p id="clear-counts">Counting\u2026</p>
      <p class="muted">Kept: running requests, synced data, verification results, and each object's Last Resync,
        Processed and Errors on the Resync view (the last result per object is kept apart from the history).</p>`;
    let scope = null;
    let asked = 0;
    const update = async (body) => {
      const mine = ++asked;  // only the latest answer is shown (answers may arrive out of order)
      const want = clearScope(body);
      const q = [want.district ? `district=${encodeURIComponent(want.district)}` : "",
        want.before ? `before=${encodeURIComponent(want.before)}` : ""].filter(Boolean).join("&");
      $("#confirm-ok").disabled = true;
      let html;
      try { html = clearCounts(await api(`api/history/clear?${q}`), want); } catch (e) { html = esc(e.message); }
      if (mine !== asked) return;
      scope = want;
      $("#clear-counts", body).innerHTML = html;
      $("#confirm-ok").disabled = false;
    };
    const ok = await confirmDialog("Clear History?", html, "Clear History", (body) => {
      $$("input", body).forEach((i) => { i.onchange = () => update(body); i.oninput = i.onchange; });
      update(body);
    });
    if (!ok) return;
    try {
      const r = await api("api/history/clear", { body: { confirm: true, district: scope.district, before: scope.before } });
      const d = r.deleted;
      flash(`History cleared${scope.district ? ` for district ${scope.district}` : ""}: ${d.requests} request(s) deleted`
        + (d.shared_requests ? `, ${d.shared_requests} shared request(s) trimmed` : "") + ".", true);
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
      const id = esc(encodeURIComponent(b.id));
      return `<tr data-batch="${esc(b.id)}"><td>${when(b.requested_at)}</td><td>${esc(b.requested_by)}</td>
        <td><b class="tag ${esc(b.status)}">${esc(b.status)}</b> Requested: ${when(b.requested_at)} Completed: ${when(b.completed_at)}
        Keys: ${esc((det.keys || []).join(" "))} Object: ${esc(det.object || "")} District: ${esc((b.districts || []).join(", "))}
        <b class="records">Records: ${esc(b.records || "-")}</b></td>
        <td><a class="pdf" href="${esc(BASE)}api/selective/${id}/report.pdf">PDF</a> <a class="csv" href="${esc(BASE)}api/selective/${id}/report.csv">CSV</a></td></tr>`;
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
      <td class="accuracy">${esc(Number(d.overall_accuracy).toFixed(2))}%</td></tr>`).join("");
    const d = v.district;
    $("#verify-district-title").textContent = d ? `Verification Results for ${d.district_id} ${d.name}` : "";
    $("#verify-objects tbody").innerHTML = d ? d.objects.map((o) => `<tr data-object="${esc(o.object)}"><td>${esc(o.object)}</td>
      <td class="accuracy">${esc(Number(o.accuracy).toFixed(2))}%</td><td>${when(o.verified_at)}</td><td class="num">${esc(o.distinct)}</td>
      <td class="num">${esc(o.at_district)}</td><td class="num">${esc(o.at_state)}</td><td class="num">${esc(o.total_errors)}</td></tr>`).join("") : "";
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
      <td>${when(x.requested_at)}</td><td>${esc(x.message)}</td></tr>`).join("") || '<tr><td colspan="4" class="muted">No process alerts.</td></tr>';
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
    $("#pick-all").onchange = (e) => { $$("input.pick").forEach((c) => { c.checked = e.target.checked; }); markAdded(); };
    $("#check-deps").onchange = markAdded;
    $("#school-year").onchange = () => { $$("input.pick").forEach((c) => { c.checked = false; }); loadResync().catch((e) => flash(e.message)); };
    document.addEventListener("click", (e) => {
      const un = e.target.closest("button.unpause");
      if (un) { unpause(un.dataset.dag); return; }
      const rev = e.target.closest("button.review-deletes");
      if (rev) reviewDeletes(rev.dataset.batch);
    });
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
    showTab(["resync", "history", "selective", "verification", "alerts", "edfi"].includes(tab) ? tab : "resync");
    document.body.dataset.ready = "1";
  }
  start();
})();
