(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("atif-data").textContent);
  var CRITERIA = DATA.criteria || [];
  var TRIALS = DATA.trials || [];
  var ELIDED = /\u2026\[[0-9,]+ characters elided[^\]]*\]\u2026/g;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function add(parent, child) { parent.appendChild(child); return child; }
  function isNum(x) { return typeof x === "number" && isFinite(x); }
  function fmt(x, digits) {
    if (!isNum(x)) return "\u2013";
    if (Number.isInteger(x)) return x.toLocaleString("en-US");
    var a = Math.abs(x);
    if (a >= 100) return Math.round(x).toLocaleString("en-US");
    if (a >= 1) return x.toFixed(digits === undefined ? 2 : digits);
    return String(Number(x.toPrecision(3)));
  }
  function usd(x) { return isNum(x) ? "$" + (Math.abs(x) >= 0.1 ? x.toFixed(2) : String(Number(x.toPrecision(3)))) : "\u2013"; }
  function secs(x) { return isNum(x) ? (x >= 120 ? (x / 60).toFixed(1) + " min" : x.toFixed(1) + " s") : "\u2013"; }
  function verdictBadge(v) {
    var known = v === "YES" || v === "NO" || v === "UNSCORED";
    return el("span", "v " + (known ? "v-" + v : "v-none"), known ? (v === "UNSCORED" ? "UNSC" : v) : "\u2014");
  }
  function textOf(content) {
    if (content === null || content === undefined) return "";
    if (typeof content === "string") return content;
    if (Array.isArray(content)) {
      return content.map(function (p) {
        if (p && typeof p === "object") {
          if (p.type === "text") return String(p.text || "");
          var src = p.source && typeof p.source === "object" ? (p.source.path || p.source.url || "") : "";
          return "[" + String(p.type || "part") + (src ? ": " + String(src) : "") + "]";
        }
        return String(p);
      }).join("\n");
    }
    try { return JSON.stringify(content, null, 2); } catch (e) { return String(content); }
  }
  // Text with the page's elision markers shown as highlighted spans.
  function textNode(cls, s, tag) {
    var box = el(tag || "div", cls);
    s = String(s);
    var last = 0, m;
    ELIDED.lastIndex = 0;
    while ((m = ELIDED.exec(s)) !== null) {
      if (m.index > last) box.appendChild(document.createTextNode(s.slice(last, m.index)));
      box.appendChild(el("span", "elided", m[0]));
      last = m.index + m[0].length;
    }
    if (last < s.length) box.appendChild(document.createTextNode(s.slice(last)));
    return box;
  }
  function collapsible(summaryText, s, cls, openByDefault) {
    var d = el("details", cls || "");
    if (openByDefault) d.open = true;
    add(d, el("summary", "", summaryText));
    add(d, textNode("text", s, "pre"));
    return d;
  }
  function isLong(s) { return s.length > 1200 || s.split("\n").length > 24; }
  function firstLine(s, n) { var l = s.split("\n")[0]; return l.length > n ? l.slice(0, n) + "\u2026" : l; }

  // ---- trial table -------------------------------------------------------------------------
  var table = document.getElementById("trial-table");
  var rows = [];
  var sortKey = null, sortDir = 1;
  var COLS = [
    { key: "task_name", label: "task" },
    { key: "epoch", label: "epoch", num: true },
    { key: "reward", label: "reward", num: true, f: fmt }
  ];
  CRITERIA.forEach(function (c, i) { COLS.push({ key: "c:" + i, label: c, crit: i }); });
  COLS.push({ key: "passed", label: "passed", num: true });
  COLS.push({ key: "cost_usd", label: "cost", num: true, f: usd });
  COLS.push({ key: "duration_seconds", label: "duration", num: true, f: secs });
  COLS.push({ key: "steps", label: "steps", num: true });
  COLS.push({ key: "model_name", label: "model" });
  COLS.push({ key: "error", label: "error" });

  function value(t, col) {
    if (col.crit !== undefined) return (t.verdicts || [])[col.crit];
    return t[col.key];
  }
  function buildTable() {
    if (!table) return;
    var thead = add(table, el("thead"));
    var hr = add(thead, el("tr"));
    COLS.forEach(function (col) {
      var th = add(hr, el("th", "sortable" + (col.num ? " num" : ""), col.label));
      th.setAttribute("data-key", col.key);
      th.addEventListener("click", function () { sortBy(col, th); });
    });
    add(table, el("tbody"));
    TRIALS.forEach(function (t, i) {
      var tr = el("tr");
      tr.tabIndex = 0;
      tr.setAttribute("data-index", String(i));
      COLS.forEach(function (col) {
        var v = value(t, col);
        var td = add(tr, el("td", col.num ? "num" : ""));
        if (col.crit !== undefined) td.appendChild(verdictBadge(v));
        else if (col.key === "error") { if (v) { td.className = "err"; td.textContent = firstLine(String(v), 80); td.title = String(v); } }
        else td.textContent = col.f ? col.f(v) : (v === null || v === undefined ? "\u2013" : String(v));
      });
      tr.addEventListener("click", function () { openTrial(i); });
      tr.addEventListener("keydown", function (e) { if (e.key === "Enter") openTrial(i); });
      var hay = [t.task_name, t.trial_id, t.model_name, t.agent_name, t.error, (t.tags || []).join(" ")]
        .concat(CRITERIA.map(function (c, k) { return c + "=" + ((t.verdicts || [])[k] || "none"); }))
        .join(" \u0001 ").toLowerCase();
      rows.push({ tr: tr, t: t, hay: hay });
    });
  }
  function sortBy(col, th) {
    if (sortKey === col.key) sortDir = -sortDir; else { sortKey = col.key; sortDir = 1; }
    Array.prototype.forEach.call(table.querySelectorAll("th"), function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
    th.classList.add(sortDir > 0 ? "sorted-asc" : "sorted-desc");
    var order = { YES: 2, NO: 0, UNSCORED: 1 };
    rows.sort(function (a, b) {
      var x = value(a.t, col), y = value(b.t, col);
      if (col.crit !== undefined) { x = x in order ? order[x] : null; y = y in order ? order[y] : null; }
      var xn = x === null || x === undefined, yn = y === null || y === undefined;
      if (xn || yn) return xn === yn ? 0 : (xn ? 1 : -1);
      if (typeof x === "number" && typeof y === "number") return (x - y) * sortDir;
      return String(x).localeCompare(String(y)) * sortDir;
    });
    applyFilter();
  }
  var filterInput = document.getElementById("filter");
  var statusSelect = document.getElementById("status");
  var countLabel = document.getElementById("count");
  function matchesStatus(t, s) {
    if (!s || s === "all") return true;
    var vs = t.verdicts || [];
    if (s === "errored") return !!t.error;
    if (s === "ok") return !t.error;
    if (s === "all-yes") return CRITERIA.length > 0 && vs.every(function (v) { return v === "YES"; });
    if (s === "any-no") return vs.indexOf("NO") >= 0;
    if (s === "any-unscored") return vs.some(function (v) { return v !== "YES" && v !== "NO"; });
    if (s.indexOf("no:") === 0) return vs[Number(s.slice(3))] === "NO";
    if (s.indexOf("yes:") === 0) return vs[Number(s.slice(4))] === "YES";
    return true;
  }
  // Only the first `limit` matches are in the table, so the cost of a keystroke does not grow
  // with the number of trials; "show more" adds the next page.
  var PAGE = 200;
  var matched = [];
  var limit = PAGE;
  var moreButton = document.getElementById("more");
  function renderRows() {
    if (!table) return;
    var frag = document.createDocumentFragment();
    for (var i = 0; i < matched.length && i < limit; i++) frag.appendChild(matched[i].tr);
    table.tBodies[0].replaceChildren(frag);
    var shown = Math.min(limit, matched.length);
    if (countLabel) {
      countLabel.textContent = matched.length.toLocaleString("en-US") + " of " + rows.length.toLocaleString("en-US") +
        " trials match" + (shown < matched.length ? ", first " + shown.toLocaleString("en-US") + " listed" : "");
    }
    if (moreButton) {
      moreButton.hidden = shown >= matched.length;
      moreButton.textContent = "Show " + Math.min(PAGE, matched.length - shown).toLocaleString("en-US") + " more";
    }
  }
  function applyFilter() {
    var q = (filterInput ? filterInput.value : "").toLowerCase().split(/\s+/).filter(Boolean);
    var s = statusSelect ? statusSelect.value : "all";
    matched = [];
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i], ok = matchesStatus(r.t, s);
      for (var j = 0; ok && j < q.length; j++) if (r.hay.indexOf(q[j]) < 0) ok = false;
      if (ok) matched.push(r);
    }
    limit = PAGE;
    renderRows();
    return matched.length;
  }
  if (moreButton) moreButton.addEventListener("click", function () { limit += PAGE; renderRows(); });
  if (statusSelect) {
    CRITERIA.forEach(function (c, i) {
      var o = add(statusSelect, el("option", "", c + ": NO")); o.value = "no:" + i;
      var o2 = add(statusSelect, el("option", "", c + ": YES")); o2.value = "yes:" + i;
    });
    statusSelect.addEventListener("change", applyFilter);
  }
  if (filterInput) filterInput.addEventListener("input", applyFilter);

  // ---- trajectory viewer -------------------------------------------------------------------
  var viewer = document.getElementById("viewer");

  function stepDomId(prefix, step, idx) {
    var sid = Number.isInteger(step.step_id) ? String(step.step_id) : "i" + idx;
    return "step-" + prefix + sid;
  }
  function metricsText(m) {
    if (!m || typeof m !== "object") return "";
    var parts = [];
    if (isNum(m.prompt_tokens)) parts.push(fmt(m.prompt_tokens) + " in");
    if (isNum(m.completion_tokens)) parts.push(fmt(m.completion_tokens) + " out");
    if (isNum(m.cached_tokens) && m.cached_tokens) parts.push(fmt(m.cached_tokens) + " cached");
    if (isNum(m.cost_usd)) parts.push(usd(m.cost_usd));
    return parts.join(" \u00b7 ");
  }
  function renderTrajectory(container, traj, prefix, citedBy) {
    var subs = {};
    var used = {};
    (traj.subagent_trajectories || []).forEach(function (s, i) {
      if (s && typeof s === "object" && s.trajectory_id) subs[String(s.trajectory_id)] = i;
    });
    (traj.steps || []).forEach(function (step, idx) {
      if (!step || typeof step !== "object") return;
      container.appendChild(renderStep(traj, step, idx, prefix, citedBy, subs, used));
    });
    var rest = (traj.subagent_trajectories || []).filter(function (s, i) { return !used[i]; });
    if (rest.length) {
      add(container, el("h3", "", "Subagent trajectories"));
      (traj.subagent_trajectories || []).forEach(function (s, i) {
        if (!used[i]) container.appendChild(subagentBlock(s, prefix + "sa" + i + "-"));
      });
    }
  }
  function subagentBlock(sub, prefix) {
    var d = el("details", "subagent");
    var name = sub && sub.agent && sub.agent.name ? String(sub.agent.name) : "subagent";
    var n = sub && Array.isArray(sub.steps) ? sub.steps.length : 0;
    add(d, el("summary", "", "Subagent: " + name + " (" + n + " steps)" + (sub && sub.trajectory_id ? " \u00b7 " + String(sub.trajectory_id) : "")));
    var inner = add(d, el("div", ""));
    var rendered = false;
    d.addEventListener("toggle", function () {
      if (d.open && !rendered) { rendered = true; renderTrajectory(inner, sub || {}, prefix, null); }
    });
    return d;
  }
  function renderStep(traj, step, idx, prefix, citedBy, subs, used) {
    var src = step.source === "agent" || step.source === "user" || step.source === "system" ? step.source : "other";
    var box = el("div", "step src-" + src);
    box.id = stepDomId(prefix, step, idx);
    var head = add(box, el("div", "step-head"));
    add(head, el("span", "id", "#" + (step.step_id === undefined ? idx + 1 : String(step.step_id))));
    add(head, el("span", "badge " + src, String(step.source || "?")));
    if (step.is_copied_context) add(head, el("span", "badge copied", "copied context"));
    if (step.timestamp) add(head, el("span", "", String(step.timestamp)));
    var model = step.model_name || (src === "agent" && traj.agent ? traj.agent.model_name : null);
    if (model) add(head, el("span", "", String(model)));
    var mt = metricsText(step.metrics);
    if (mt) add(head, el("span", "", mt));
    if (citedBy && citedBy[step.step_id]) add(head, el("span", "badge cited", "cited by " + citedBy[step.step_id].join(", ")));
    var body = add(box, el("div", "step-body"));
    var msg = textOf(step.message);
    if (msg) {
      if (isLong(msg)) body.appendChild(collapsible("Message: " + firstLine(msg, 100) + " (" + msg.length.toLocaleString("en-US") + " chars)", msg, "", false));
      else body.appendChild(textNode("text msg", msg));
    }
    if (step.reasoning_content) {
      var r = String(step.reasoning_content);
      body.appendChild(collapsible("Reasoning (" + r.length.toLocaleString("en-US") + " chars)", r, "reasoning", false));
    }
    (Array.isArray(step.tool_calls) ? step.tool_calls : []).forEach(function (c) {
      if (!c || typeof c !== "object") return;
      var call = add(body, el("div", "call"));
      var top = add(call, el("div", ""));
      add(top, el("span", "fn", String(c.function_name || "?")));
      if (c.tool_call_id) add(top, el("span", "lbl", "  " + String(c.tool_call_id)));
      var args = c.arguments;
      var s = typeof args === "string" ? args : JSON.stringify(args === undefined ? {} : args, null, 2);
      if (isLong(s)) call.appendChild(collapsible("arguments (" + s.length.toLocaleString("en-US") + " chars)", s, "", false));
      else call.appendChild(textNode("text", s, "pre"));
    });
    var obs = step.observation && Array.isArray(step.observation.results) ? step.observation.results : [];
    obs.forEach(function (res) {
      if (!res || typeof res !== "object") return;
      var o = add(body, el("div", "obs"));
      add(o, el("div", "lbl", res.source_call_id ? "result of " + String(res.source_call_id) : "observation"));
      var t = textOf(res.content);
      if (t) {
        if (isLong(t)) o.appendChild(collapsible(firstLine(t, 100) + " \u2026 (" + t.length.toLocaleString("en-US") + " chars)", t, "", false));
        else o.appendChild(textNode("text", t, "pre"));
      }
      (Array.isArray(res.subagent_trajectory_ref) ? res.subagent_trajectory_ref : []).forEach(function (ref, k) {
        var key = ref && ref.trajectory_id !== undefined ? String(ref.trajectory_id) : null;
        if (key !== null && key in subs) {
          used[subs[key]] = true;
          o.appendChild(subagentBlock(traj.subagent_trajectories[subs[key]], prefix + "sa" + subs[key] + "-"));
        } else {
          var where = ref ? (ref.trajectory_path || ref.session_id || ref.trajectory_id || "") : "";
          add(o, el("div", "lbl", "subagent trajectory (not embedded): " + String(where)));
        }
      });
    });
    return box;
  }
  function jumpTo(stepId) {
    var target = document.getElementById("step-" + stepId);
    if (!target) return false;
    var p = target.parentElement;
    while (p) { if (p.tagName === "DETAILS") p.open = true; p = p.parentElement; }
    target.scrollIntoView({ block: "start" });
    target.classList.remove("flash");
    void target.offsetWidth;
    target.classList.add("flash");
    setTimeout(function () { target.classList.remove("flash"); }, 2000);
    return true;
  }
  function renderRatings(aside, ratings) {
    add(aside, el("h2", "", "Criteria"));
    if (!ratings.length) add(aside, el("div", "muted", "No ratings for this trial."));
    ratings.forEach(function (r) {
      var box = add(aside, el("div", "rating"));
      var top = add(box, el("div", ""));
      top.appendChild(verdictBadge(r.verdict));
      add(top, document.createTextNode(" "));
      add(top, el("span", "label", String(r.criterion)));
      var meta = [String(r.source || "")];
      if (r.judge_model) meta.push(String(r.judge_model));
      if (r.truncated) meta.push("transcript truncated for the judge");
      if (r.cached) meta.push("cached");
      add(box, el("div", "muted", meta.join(" \u00b7 ")));
      if (r.reasoning) box.appendChild(textNode("why", String(r.reasoning)));
      if (r.error) add(box, el("div", "err", String(r.error)));
      var cited = Array.isArray(r.cited_steps) ? r.cited_steps.filter(function (n) { return Number.isInteger(n); }) : [];
      if (cited.length) {
        var line = add(box, el("div", ""));
        add(line, el("span", "muted", "cited: "));
        cited.forEach(function (n) {
          var a = add(line, el("a", "cite", "step " + n));
          a.href = "#step-" + n;
          a.setAttribute("data-step", String(n));
          a.addEventListener("click", function (e) { e.preventDefault(); jumpTo(n); });
        });
      }
    });
  }
  function metaItem(parent, k, v) {
    var s = add(parent, el("span", ""));
    add(s, el("b", "", k + ": "));
    add(s, document.createTextNode(v));
  }
  // Trajectories are embedded gzipped (base64) and unpacked only when a trial is opened.
  function loadBlob(i) {
    var node = document.getElementById("traj-" + i);
    if (!node) return Promise.resolve({ trajectory: null, ratings: [] });
    if (typeof DecompressionStream === "undefined") {
      return Promise.reject(new Error("this browser cannot unpack the embedded trajectory (no DecompressionStream)"));
    }
    var bin = atob(node.textContent.trim());
    var bytes = new Uint8Array(bin.length);
    for (var k = 0; k < bin.length; k++) bytes[k] = bin.charCodeAt(k);
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text().then(function (text) { return JSON.parse(text); });
  }
  var opening = 0;
  function openTrial(i) {
    var token = ++opening;
    return loadBlob(i).then(function (blob) {
      if (token === opening) renderTrial(i, blob);
    }, function (err) {
      if (token === opening) renderTrial(i, { trajectory: null, ratings: [], loadError: String(err && err.message || err) });
    });
  }
  function renderTrial(i, blob) {
    var t = TRIALS[i];
    if (!t || !viewer) return;
    rows.forEach(function (r) { r.tr.classList.toggle("open", r.t === t); });
    viewer.replaceChildren();
    viewer.hidden = false;
    var head = add(viewer, el("div", "viewer-head"));
    add(head, el("h2", "", t.task_name + " \u00b7 epoch " + t.epoch));
    add(head, el("span", "muted", t.trial_id));
    if (DATA.mode !== "trial") {
      var close = add(head, el("button", "", "Close"));
      close.type = "button";
      close.addEventListener("click", function () { viewer.hidden = true; rows.forEach(function (r) { r.tr.classList.remove("open"); }); });
    }
    var meta = add(viewer, el("div", "meta"));
    metaItem(meta, "reward", fmt(t.reward, 3));
    metaItem(meta, "cost", usd(t.cost_usd));
    metaItem(meta, "duration", secs(t.duration_seconds));
    metaItem(meta, "steps", fmt(t.steps));
    metaItem(meta, "tokens", fmt(t.input_tokens) + " in \u00b7 " + fmt(t.output_tokens) + " out");
    if (t.agent_name) metaItem(meta, "agent", String(t.agent_name));
    if (t.model_name) metaItem(meta, "model", String(t.model_name));
    if (t.tags && t.tags.length) metaItem(meta, "tags", t.tags.join(", "));
    var traj = blob.trajectory;
    if (traj && traj.schema_version) metaItem(meta, "schema", String(traj.schema_version));
    if (t.error) { var e = add(viewer, el("div", "meta")); e.appendChild(textNode("err text", "Error: " + String(t.error))); }
    if (blob.instruction) {
      var ins = add(viewer, el("div", "meta"));
      ins.appendChild(collapsible("Task instruction: " + firstLine(String(blob.instruction), 120), String(blob.instruction), "", false));
    }
    if (blob.loadError) add(viewer, el("div", "note", "The trajectory cannot be shown: " + blob.loadError));
    if (blob.capped) add(viewer, el("div", "note", "Long texts of this trajectory are shortened in this page (marked where they are); the store keeps them whole."));
    var body = add(viewer, el("div", "viewer-body"));
    var steps = add(body, el("div", "steps"));
    var aside = add(body, el("aside", "ratings"));
    var citedBy = {};
    (blob.ratings || []).forEach(function (r) {
      (Array.isArray(r.cited_steps) ? r.cited_steps : []).forEach(function (n) { (citedBy[n] = citedBy[n] || []).push(String(r.criterion)); });
    });
    if (traj && typeof traj === "object") {
      if (traj.agent) {
        var a = traj.agent;
        add(steps, el("div", "muted", "Agent: " + [a.name, a.version, a.model_name].filter(Boolean).map(String).join(" \u00b7 ")));
      }
      if (traj.notes) steps.appendChild(textNode("text muted", "Notes: " + String(traj.notes)));
      renderTrajectory(steps, traj, "", citedBy);
      if (traj.final_metrics) add(steps, el("div", "muted", "Final metrics: " + metricsText({
        prompt_tokens: traj.final_metrics.total_prompt_tokens, completion_tokens: traj.final_metrics.total_completion_tokens,
        cached_tokens: traj.final_metrics.total_cached_tokens, cost_usd: traj.final_metrics.total_cost_usd })));
    } else {
      if (!blob.loadError) add(steps, el("div", "muted", "This trial has no stored trajectory."));
    }
    renderRatings(aside, blob.ratings || []);
    if (DATA.mode !== "trial") viewer.scrollIntoView({ block: "start" });
  }

  buildTable();
  applyFilter();
  window.atif = { applyFilter: applyFilter, openTrial: openTrial, jumpTo: jumpTo, trials: TRIALS.length };
  if (DATA.mode === "trial" && TRIALS.length) openTrial(0);
  var m = /^#trial=([0-9a-f]{4,64})$/.exec(location.hash || "");
  if (m) {
    for (var k = 0; k < TRIALS.length; k++) if (TRIALS[k].trial_id.indexOf(m[1]) === 0) { openTrial(k); break; }
  }
})();
