/* The organiser's workspace (photos/workspace.py): keyboard and in-place updates for the
   tagging grid and the review queue. Every action is the page's own form, posted with
   fetch and answered as JSON; without this script the same forms work as plain POSTs.
   No text lives here: labels come from the page, messages from the server. */
(function () {
  "use strict";

  function typing(event) {
    const el = event.target;
    return el && (el.tagName === "INPUT" || el.tagName === "SELECT" || el.tagName === "TEXTAREA");
  }

  function showStatus(data) {
    const status = document.querySelector("[data-status]");
    if (!status) return;
    status.textContent = data.message || "";
    status.classList.toggle("is-error", data.level === "error");
    status.classList.toggle("is-warning", data.level === "warning");
  }

  async function post(form, fields) {
    const body = new FormData();
    body.append("csrfmiddlewaretoken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    for (const [name, value] of fields) body.append(name, value);
    let data;
    try {
      // getAttribute: the forms' buttons are named "action", which shadows form.action.
      const response = await fetch(form.getAttribute("action"), {method: "POST", body: body,
        headers: {"Accept": "application/json"}, credentials: "same-origin"});
      data = await response.json();
    } catch (error) {
      console.error(error);
      form.submit();  // the server answers the plain POST with a page and a message
      return null;
    }
    showStatus(data);
    for (const [photoId, html] of Object.entries(data.tags || {})) {
      const old = document.querySelector(`[data-photo-tags="${photoId}"]`);
      if (old) old.outerHTML = html;
    }
    return data;
  }

  // --- Grid ---------------------------------------------------------------------------
  const grid = document.querySelector("[data-photo-grid]");
  const tagging = document.querySelector("[data-tagging]");
  if (tagging) {
    const bibInput = tagging.querySelector("[data-bib-input]");
    const counter = tagging.querySelector("[data-selected-count]");
    const cards = () => Array.from(tagging.querySelectorAll(".photo-card"));
    let current = cards()[0] || null;

    function refreshSelection() {
      let count = 0;
      for (const card of cards()) {
        const on = card.querySelector("[data-select]").checked;
        card.classList.toggle("is-selected", on);
        if (on) count += 1;
      }
      counter.textContent = count ? `${counter.dataset.label} ${count}` : "";
    }

    function targets() {
      const chosen = cards().filter((card) => card.querySelector("[data-select]").checked);
      if (chosen.length) return chosen.map((card) => card.dataset.photo);
      return current ? [current.dataset.photo] : [];
    }

    function columns() {
      const all = cards();
      if (all.length < 2) return 1;
      const top = all[0].offsetTop;
      const index = all.findIndex((card) => card.offsetTop !== top);
      return index === -1 ? all.length : index;
    }

    function move(step) {
      const all = cards();
      if (!all.length) return;
      const index = current ? all.indexOf(current) : -1;
      const next = all[Math.min(all.length - 1, Math.max(0, index + step))];
      next.focus();
    }

    tagging.addEventListener("focusin", (event) => {
      const card = event.target.closest(".photo-card");
      if (card) current = card;
    });
    tagging.addEventListener("change", (event) => {
      if (event.target.matches("[data-select]")) refreshSelection();
    });

    async function send(action, bib) {
      const fields = [["action", action]];
      if (action !== "undo") {
        fields.push(["bib", bib]);
        for (const id of targets()) fields.push(["photo", id]);
      }
      const data = await post(tagging, fields);
      if (data && data.level !== "error" && action !== "undo") bibInput.value = "";
    }

    tagging.addEventListener("submit", (event) => {
      const button = event.submitter;
      if (!button) return;
      // Featuring changes no tag: the page is sent as it is and comes back with its badges.
      if (button.value === "feature" || button.value === "unfeature") return;
      event.preventDefault();
      if (button.name === "remove_tag") {
        post(tagging, [["remove_tag", button.value]]);
        return;
      }
      send(button.value, bibInput.value);
    });

    bibInput.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        send(event.shiftKey ? "remove" : "add", bibInput.value);
      } else if (event.key === "Escape") {
        bibInput.value = "";
        (current || bibInput).focus();
      }
    });

    document.addEventListener("keydown", (event) => {
      if (typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
      const keys = {ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns()};
      if (event.key in keys) {
        event.preventDefault();
        move(keys[event.key]);
      } else if (event.key === " " && current) {
        event.preventDefault();
        const box = current.querySelector("[data-select]");
        box.checked = !box.checked;
        refreshSelection();
      } else if (event.key === "Escape") {
        for (const box of tagging.querySelectorAll("[data-select]")) box.checked = false;
        refreshSelection();
      } else if (event.key === "u") {
        event.preventDefault();
        send("undo", "");
      } else if (/^[0-9a-zA-Z]$/.test(event.key)) {
        // Typing a bib anywhere starts it in the bib field.
        event.preventDefault();
        bibInput.focus();
        bibInput.value += event.key;
      }
    });
    refreshSelection();
    if (grid && current) current.focus({preventScroll: true});
  }

  // --- Review queue ---------------------------------------------------------------------
  const queue = document.querySelector("[data-review-queue]");
  if (queue) {
    const items = () => Array.from(queue.querySelectorAll(".review-item"));
    const undoForm = document.querySelector("[data-undo-form]");
    let current = items()[0] || null;

    function focusItem(item) {
      if (!item) return;
      current = item;
      item.focus();
      item.scrollIntoView({block: "nearest"});
    }

    function nextUndecided(from) {
      const all = items();
      const start = all.indexOf(from);
      return all.slice(start + 1).find((item) => !item.classList.contains("is-decided"))
        || all.find((item) => !item.classList.contains("is-decided")) || from;
    }

    async function decide(item, action) {
      const form = item.querySelector("form");
      // A suggestion (timing, bursts) is answered by its own id, a tag by the tag's.
      const target = item.dataset.suggestion ? ["suggestion", item.dataset.suggestion]
        : ["tag", item.dataset.tag];
      const data = await post(form, [["action", action], target]);
      if (!data || data.level === "error" || !data.changed) return;
      item.classList.add("is-decided");
      item.dataset.decided = action;
      item.querySelector("[data-decision]").textContent =
        action === "confirm" ? queue.dataset.confirmedLabel : queue.dataset.rejectedLabel;
      item.querySelectorAll("button").forEach((button) => { button.disabled = true; });
      focusItem(nextUndecided(item));
    }

    async function undo() {
      const data = await post(undoForm, [["action", "undo"]]);
      if (!data || !data.changed) return;
      // The change undone is the latest decision taken on this page.
      const decided = items().filter((item) => item.dataset.decided);
      const last = decided.sort((a, b) => (b.dataset.order || 0) - (a.dataset.order || 0))[0];
      if (!last) return;
      last.classList.remove("is-decided");
      delete last.dataset.decided;
      last.querySelector("[data-decision]").textContent = "";
      last.querySelectorAll("button").forEach((button) => { button.disabled = false; });
      focusItem(last);
    }

    let order = 0;
    queue.addEventListener("focusin", (event) => {
      const item = event.target.closest(".review-item");
      if (item) current = item;
    });
    queue.addEventListener("submit", (event) => {
      event.preventDefault();
      const item = event.target.closest(".review-item");
      item.dataset.order = ++order;
      decide(item, event.submitter ? event.submitter.value : "confirm");
    });
    if (undoForm) {
      undoForm.addEventListener("submit", (event) => { event.preventDefault(); undo(); });
    }
    document.addEventListener("keydown", (event) => {
      if (typing(event) || event.ctrlKey || event.metaKey || event.altKey || !current) return;
      const all = items();
      const index = all.indexOf(current);
      if (event.key === "ArrowDown" || event.key === "ArrowRight" || event.key === "j") {
        event.preventDefault();
        focusItem(all[Math.min(all.length - 1, index + 1)]);
      } else if (event.key === "ArrowUp" || event.key === "ArrowLeft" || event.key === "k") {
        event.preventDefault();
        focusItem(all[Math.max(0, index - 1)]);
      } else if ((event.key === "y" || event.key === "Enter") && !current.dataset.decided) {
        if (event.target.tagName === "BUTTON") return;  // the button's own Enter
        event.preventDefault();
        current.dataset.order = ++order;
        decide(current, "confirm");
      } else if ((event.key === "n" || event.key === "Delete" || event.key === "Backspace")
                 && !current.dataset.decided) {
        event.preventDefault();
        current.dataset.order = ++order;
        decide(current, "reject");
      } else if (event.key === "u") {
        event.preventDefault();
        undo();
      }
    });
    if (current) focusItem(current);
  }
}());
