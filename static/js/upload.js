// Bulk upload: sends files a few at a time, one request per file, with a
// progress bar per file and overall, and retries files whose upload failed
// (network error or server error) without sending the good ones again.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = document.getElementById("upload-input");
  const list = document.getElementById("upload-list");
  const section = document.getElementById("upload-progress");
  const overall = document.getElementById("overall-progress");
  const summary = document.getElementById("overall-summary");
  const retryButton = document.getElementById("retry-uploads");
  const messages = JSON.parse(document.getElementById("upload-messages").textContent);
  const endpoint = form.dataset.endpoint;
  const endpointPath = new URL(endpoint, window.location.href).pathname;
  const parallel = parseInt(form.dataset.parallel, 10) || 3;
  const maxRetries = parseInt(form.dataset.maxRetries, 10) || 3;
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;

  const items = [];   // {file, row, bar, status, loaded, attempts, state, retryAt, results}
  let running = 0;

  function format(template, values) {
    return template.replace(/%\((\w+)\)s/g, (_, key) => String(values[key]));
  }

  // Counted messages come in the forms the page's language has ("one", "other"): the
  // view translated each with ngettext; Intl.PluralRules says which one a count takes.
  const pluralRules = new Intl.PluralRules(document.documentElement.lang || "fr");
  function plural(key, count, values) {
    const forms = messages.plurals[key];
    return format(forms[pluralRules.select(count)] || forms.other, {count, ...values});
  }

  function statusWithReason(status, reason) {
    return reason ? format(messages.status_reason, {status, reason}) : status;
  }

  // "8 accepted, 1 rejected": accepted always, the other outcomes when there are any.
  function outcomes(counts) {
    const parts = [plural("accepted", counts.accepted)];
    for (const key of ["duplicate", "rejected", "failed"]) {
      if (counts[key]) parts.push(plural(key, counts[key]));
    }
    return parts.join(", ");
  }

  function countResults(results) {
    return {
      accepted: results.filter((r) => r.status === "accepted").length,
      duplicate: results.filter((r) => r.status === "duplicate").length,
      rejected: results.filter((r) => r.status === "rejected").length,
    };
  }

  function addFiles(files) {
    for (const file of files) {
      const row = document.createElement("li");
      row.className = "upload-item";
      const name = document.createElement("span");
      name.className = "upload-name";
      name.textContent = file.name;
      const bar = document.createElement("progress");
      bar.max = 100;
      bar.value = 0;
      const status = document.createElement("span");
      status.className = "upload-status";
      status.textContent = messages.waiting;
      row.append(name, bar, status);
      list.append(row);
      items.push({file, row, bar, status, loaded: 0, attempts: 0, state: "waiting", retryAt: 0,
                  results: []});
    }
    section.hidden = false;
    pump();
  }

  function pump() {
    const now = performance.now();
    while (running < parallel) {
      // A file waiting for a retry only goes once its back-off is over.
      const next = items.find((item) => item.state === "waiting" && item.retryAt <= now);
      if (!next) break;
      send(next);
    }
    refresh();
  }

  function send(item) {
    running += 1;
    item.state = "uploading";
    item.attempts += 1;
    item.row.dataset.state = "uploading";
    item.status.textContent = messages.uploading;
    const body = new FormData();
    body.append("file", item.file, item.file.name);
    const request = new XMLHttpRequest();
    request.open("POST", endpoint);
    request.setRequestHeader("X-CSRFToken", csrf);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) {
        item.loaded = event.loaded / event.total;
        item.bar.value = Math.round(item.loaded * 100);
        refresh();
      }
    };
    request.onload = () => {
      // Redirected (to the login page, when the session has ended): the answer is a page,
      // not ours, and sending again will not help until the photographer logs in.
      if (request.responseURL && new URL(request.responseURL).pathname !== endpointPath) {
        fail(item, messages.login, false);
        return;
      }
      let data = null;
      try { data = JSON.parse(request.responseText); } catch (e) { /* an HTML error page */ }
      if (request.status >= 200 && request.status < 300 && data && Array.isArray(data.results)) {
        finish(item, data.results);
        return;
      }
      const reason = (data && data.error) || messages.error + " (HTTP " + request.status + ")";
      fail(item, reason, request.status >= 500 || request.status === 0);
    };
    request.onerror = () => fail(item, messages.error, true);
    request.send(body);
  }

  function finish(item, results) {
    running -= 1;
    item.results = results;
    item.loaded = 1;
    item.bar.value = 100;
    const rejected = results.filter((r) => r.status === "rejected");
    item.state = "done";
    item.isArchive = results.length !== 1 || results[0].name !== item.file.name;
    if (!item.isArchive) {
      const result = results[0];
      item.row.dataset.state = result.status;
      item.status.textContent = statusWithReason(messages[result.status], result.reason);
    } else {
      // A ZIP: one line for the archive, one sub-line per rejected entry.
      item.row.dataset.state = rejected.length ? "partial" : "accepted";
      item.status.textContent = outcomes(countResults(results));
      if (rejected.length) {
        const details = document.createElement("ul");
        for (const r of rejected) {
          const li = document.createElement("li");
          li.textContent = statusWithReason(r.name, r.reason);
          details.append(li);
        }
        item.row.append(details);
      }
    }
    pump();
  }

  function fail(item, reason, retryable) {
    running -= 1;
    if (retryable && item.attempts < maxRetries) {
      item.state = "waiting";
      item.row.dataset.state = "retrying";
      item.status.textContent = messages.retrying;
      // Back off a little so a restarting server is not hammered.
      const delay = 500 * item.attempts;
      item.retryAt = performance.now() + delay;
      setTimeout(pump, delay + 20);  // a little late rather than early: it must find it due
      pump();  // the slot this file used can take another one meanwhile
      return;
    }
    item.state = "failed";
    item.row.dataset.state = "failed";
    item.status.textContent = reason;
    pump();
  }

  function refresh() {
    const total = items.length;
    const progress = items.reduce((sum, item) => sum + (item.state === "done" || item.state === "failed" ? 1 : item.loaded), 0);
    overall.value = total ? Math.round((progress / total) * 100) : 0;
    const results = items.flatMap((item) => item.results);
    const done = items.filter((i) => i.state === "done" || i.state === "failed").length;
    const files = plural("files_sent", total, {done, total});
    const counts = {...countResults(results), failed: items.filter((i) => i.state === "failed").length};
    // Files and what they held: a ZIP's photos are counted as photos, never as files.
    const archives = items.filter((item) => item.isArchive).length;
    summary.textContent = archives
      ? format(messages.summary_with_contents, {
          files,
          contents: [plural("zip_archives", archives), plural("photos", results.length)].join(", "),
          outcomes: outcomes(counts),
        })
      : format(messages.summary, {files, outcomes: outcomes(counts)});
    retryButton.hidden = !items.some((i) => i.state === "failed");
  }

  retryButton.addEventListener("click", () => {
    for (const item of items) {
      if (item.state === "failed") {
        item.state = "waiting";
        item.attempts = 0;
        item.retryAt = 0;
        item.loaded = 0;
        item.bar.value = 0;
        item.status.textContent = messages.waiting;
      }
    }
    pump();
  });

  input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });
  form.addEventListener("dragover", (event) => { event.preventDefault(); form.classList.add("dragging"); });
  form.addEventListener("dragleave", () => form.classList.remove("dragging"));
  form.addEventListener("drop", (event) => {
    event.preventDefault();
    form.classList.remove("dragging");
    addFiles(event.dataTransfer.files);
  });
})();
