// Resync State Data page, Ed-Fi Resync tab: vanilla JS over /api/edfi/... (same origin, session cookie).
// The server checks Read and Write again on every route; the button is only disabled here as a courtesy.
"use strict";
(function () {
  // The page's helpers, from app.js (loaded first): escaping, JSON calls, the confirm dialog.
  const { BASE, $, $$, esc, api, confirmDialog } = window.CampusSync;
  const st = { confs: [], rights: null, poll: null, loaded: false };

  function say(msg, ok) {
    const el = $("#edfi-flash");
    el.textContent = msg || "";
    el.className = ok ? "ok" : "";
  }
  function conf() { return st.confs.find((c) => c.configuration === $("#edfi-conf").value); }

  function renderForm() {
    const c = conf();
    if (!c) return;
    $("#edfi-schools").innerHTML = c.schools.map(([id, name]) => `<option value="${esc(id)}">${esc(name)} (${esc(id)})</option>`).join("");
    $("#edfi-schools-none").hidden = c.schools.length > 0;
    $("#edfi-resources").innerHTML = c.resources.map((r) =>
      `<label><input type="checkbox" class="edfi-resource" value="${esc(r)}"> ${esc(r)}</label>`).join("");
    $("#edfi-all-warning").textContent = c.all_schools_warning;
    $("#edfi-cleanup-row").hidden = !c.run_cleanup_allowed;
    $("#edfi-cleanup").checked = false;
    $("#edfi-cleanup-confirm").checked = false;
    $("#edfi-cleanup-confirm").disabled = true;
    $("#edfi-conf-info").textContent = `district ${c.district}, school year ending ${c.school_year}, state ${c.state}`;
  }
  function formBody() {
    const body = {
      configuration: $("#edfi-conf").value,
      schools: $$("#edfi-schools option").filter((o) => o.selected).map((o) => o.value),
      all_schools: $("#edfi-all").checked,
      person_ids: $("#edfi-person-ids").value,
      course_ids: $("#edfi-course-ids").value,
      section_ids: $("#edfi-section-ids").value,
      resources: $$("input.edfi-resource").filter((c) => c.checked).map((c) => c.value),
      select_dependencies: $("#edfi-deps").checked,
    };
    if (!$("#edfi-cleanup-row").hidden) {
      body.run_cleanup = $("#edfi-cleanup").checked;
      body.confirm_cleanup = body.run_cleanup && $("#edfi-cleanup-confirm").checked;
    }
    return body;
  }

  function resultRow(name, r, added) {
    const cls = added ? ' class="added"' : "";
    if (!r) return `<tr data-resource="${esc(name)}"${cls}><td>${esc(name)}</td><td colspan="7" class="muted">planned</td></tr>`;
    const reasons = Object.entries(r.error_reasons || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    return `<tr data-resource="${esc(name)}"${cls}><td>${esc(name)}</td>
      <td><span class="dot ${esc(r.status)}"></span> ${esc(r.status)}</td><td>${esc(r.processed)}</td>
      <td>${esc(r.inserted)}</td><td>${esc(r.updated)}</td><td>${esc(r.deleted)}</td><td>${esc(r.unchanged)}</td>
      <td>${esc(r.errors)}${reasons ? ` <span class="muted">(${esc(reasons)})</span>` : ""}</td></tr>`;
  }
  function resultsTable(order, results, added) {
    const by = {};
    (results || []).forEach((r) => { by[r.object] = r; });
    return `<table class="grid edfi-results"><thead><tr><th>Resource</th><th>Status</th><th>Processed</th><th>Inserted</th>
      <th>Updated</th><th>Deleted</th><th>Unchanged</th><th>Errors</th></tr></thead><tbody>
      ${order.map((n) => resultRow(n, by[n], (added || []).includes(n))).join("")}</tbody></table>`;
  }
  // What Run Clean-up Logic did per resource (the request's details.cleanup): found, deleted, or why not read.
  function cleanupSummary(notes, e) {
    if (!notes) return "";
    const items = Object.entries(notes).map(([r, n]) => n.skipped ? `<li class="muted">${esc(r)}: ${esc(n.skipped)}</li>`
      : `<li>${esc(r)}: ${esc(n.read)} read at the API, ${esc(n.absent)} not in Campus, ${esc(n.deleted)} deleted</li>`);
    const mode = e.confirm_cleanup ? "confirmed" : "dry run: nothing deleted, listed in the error report";
    return `<details class="edfi-cleanup"><summary>Clean-up (${esc(mode)})</summary><ul>${items.join("")}</ul></details>`;
  }
  function errorLink(batchId) {
    return `<a class="edfi-errors" href="${esc(BASE)}api/edfi/${esc(batchId)}/failed.csv">Error report (CSV)</a>`;
  }

  async function startResync() {
    say("");
    let plan;
    try { plan = await api("api/edfi/plan", { body: formBody() }); } catch (e) { say(e.message); return; }
    const list = plan.plan.map((r, i) => `<li${plan.added.includes(r) ? ' class="added"' : ""}>${esc(i + 1)}. ${esc(r)}</li>`).join("");
    const where = plan.schools === null ? "every school of the district" : `school(s) ${plan.schools.join(", ")}`;
    const cleanup = !plan.conf.run_cleanup ? ""
      : plan.conf.confirm_cleanup ? `<p class="edfi-cleanup-note"><b>Clean-up:</b> records at the API in this scope that
          Campus no longer has are <b>deleted</b>, children first, under the mass-delete guard.</p>`
      : `<p class="edfi-cleanup-note"><b>Clean-up (dry run):</b> records at the API in this scope that Campus no longer
          has are listed in the error report, not deleted.</p>`;
    const ok = await confirmDialog("Start Ed-Fi Resync",
      `<p>Configuration <b>${esc(plan.conf.configuration)}</b>, ${esc(where)}. Resources, in the order they are sent
       (<i>italic</i>: added by Select Dependencies):</p><ol class="edfi-plan">${list}</ol>${cleanup}`, "Start Resync");
    if (!ok) return;
    let run;
    try { run = await api("api/edfi/resync", { body: formBody() }); } catch (e) { say(e.message); return; }
    say(`Ed-Fi resync started (${run.dag_run_id}).`, true);
    watch(run.dag_run_id, plan);
  }
  function watch(runId, plan) {
    const el = $("#edfi-progress");
    el.hidden = false;
    if (st.poll) clearInterval(st.poll);
    const tick = async () => {
      let p;
      try { p = await api(`api/edfi/progress?run_id=${encodeURIComponent(runId)}`); } catch (e) { say(e.message); return; }
      const b = p.batch;
      const done = b ? b.results.filter((r) => r.status !== "gray").length : 0;
      el.innerHTML = `<p>Run <code>${esc(runId)}</code>: <b class="run-state">${esc(p.state)}</b>
        ${b ? `— request ${esc(b.id)} ${esc(b.status)}, ${esc(done)} of ${esc(plan.plan.length)} resources done` : "— starting"}</p>
        ${p.waiting ? `<div class="waiting">${p.waiting.reasons.map((r) => `<div>${esc(r)}</div>`).join("")}
          ${p.waiting.paused && p.waiting.can_unpause ? `<button type="button" class="unpause" data-dag="edfi_resync">Unpause edfi_resync</button>` : ""}</div>` : ""}
        ${resultsTable(plan.plan, b ? b.results : [], plan.added)}${b ? errorLink(b.id) : ""}`;
      if (["success", "failed"].includes(p.state)) {
        clearInterval(st.poll);
        st.poll = null;
        say(p.state === "success" ? "Ed-Fi resync finished." : "Ed-Fi resync failed: see the results and the error report.",
          p.state === "success");
        loadLists().catch((e) => say(e.message));
      }
    };
    tick();
    st.poll = setInterval(tick, 2000);
  }

  async function loadLists() {
    const [h, ro] = await Promise.all([api("api/edfi/history?limit=10"), api("api/edfi/read-only")]);
    $("#edfi-readonly tbody").innerHTML = ro.read_only.length ? ro.read_only.map((x) =>
      `<tr><td>${esc(x.configuration)}</td><td>${esc(x.school_id)}</td><td>${esc(x.resource)}</td>
       <td>${esc(x.batch_id)}</td><td>${esc(x.requested_by)}</td></tr>`).join("")
      : `<tr><td colspan="5" class="muted">No resync is running: nothing is read only.</td></tr>`;
    $("#edfi-history").innerHTML = h.requests.length ? h.requests.map((b) => {
      const e = b.details && b.details.edfi ? b.details.edfi : {};
      return `<div class="edfi-request" data-batch="${esc(b.id)}"><h4>Request ${esc(b.id)} — ${esc(e.configuration || "")}
        ${esc(b.status)}, by ${esc(b.requested_by)} at ${esc(b.requested_at)}</h4>
        ${resultsTable(e.resources || b.objects || [], b.results, (e.resources || []).filter((r) => !(e.chosen || []).includes(r)))}
        ${cleanupSummary(b.details && b.details.cleanup, e)}${errorLink(b.id)}</div>`;
    }).join("") : `<p class="muted">No Ed-Fi resync yet.</p>`;
  }
  async function load() {
    const [me, c] = await Promise.all([api("api/edfi/rights"), api("api/edfi/configurations")]);
    st.rights = me;
    st.confs = c.configurations;
    if (!st.loaded) {
      $("#edfi-conf").innerHTML = st.confs.map((x) => `<option value="${esc(x.configuration)}">${esc(x.configuration)}</option>`).join("");
      renderForm();
      st.loaded = true;
    }
    $("#edfi-start").disabled = !me.write;
    $("#edfi-start").title = me.write ? "" : "Write rights needed";
    await loadLists();
  }

  function init() {
    const tab = $("#tab-edfi");
    if (!tab) return;
    $("#edfi-conf").onchange = renderForm;
    $("#edfi-all").onchange = (e) => { $("#edfi-schools").disabled = e.target.checked; };
    $("#edfi-cleanup").onchange = (e) => {
      $("#edfi-cleanup-confirm").disabled = !e.target.checked;
      if (!e.target.checked) $("#edfi-cleanup-confirm").checked = false;
    };
    $("#edfi-start").onclick = (e) => { e.preventDefault(); startResync(); };
    const open = () => load().catch((e) => say(e.message));
    // loads whenever the page shows the tab (a click, or the tab restored at start)
    new MutationObserver(() => { if (tab.classList.contains("active")) open(); })
      .observe(tab, { attributes: true, attributeFilter: ["class"] });
    if (tab.classList.contains("active")) open();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
