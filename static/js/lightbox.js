// The photo grids' lightbox, and the photo page's keyboard.
//
// Progressive enhancement: every tile is a link to the photo's own page, and stays one
// without JavaScript (or with a modifier key: a new tab). With it, a tap opens the
// watermarked preview over the page in templates/search/_lightbox.html's <dialog>:
// ←/→ or a swipe for the neighbours (the grid's "more" link is followed at the end),
// Esc or the browser's back button closes, focus stays inside and returns to the tile.
// Every word it shows is in the page already (translated by Django): no strings here.
(function () {
  "use strict";

  const SWIPE_PX = 50;  // a horizontal move shorter than this is a tap, not a swipe

  function typing(event) {
    const target = event.target;
    return target instanceof HTMLElement && (target.isContentEditable
      || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  function plainKey(event) {
    return !(event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) && !typing(event);
  }

  // --- The photo page: ←/→ follow its previous/next links -----------------------------
  const photoNav = document.querySelector(".photo-nav");
  if (photoNav) {
    document.addEventListener("keydown", (event) => {
      if (!plainKey(event)) return;
      const rel = { ArrowLeft: "prev", ArrowRight: "next" }[event.key];
      const link = rel && photoNav.querySelector(`a[rel=${rel}]`);
      if (link) {
        event.preventDefault();
        window.location.assign(link.href);
      }
    });
  }

  // --- The lightbox ------------------------------------------------------------------
  const dialog = document.getElementById("lightbox");
  if (!dialog || typeof dialog.showModal !== "function") return;  // old browser: plain links

  const image = dialog.querySelector(".lightbox-image");
  const title = dialog.querySelector(".lightbox-title");
  const reasons = dialog.querySelector("[data-lightbox-reasons]");
  const bibsLine = dialog.querySelector("[data-lightbox-bibs]");
  const pageLink = dialog.querySelector("[data-lightbox-page]");
  const previousButton = dialog.querySelector("[data-lightbox-previous]");
  const nextButton = dialog.querySelector("[data-lightbox-next]");
  const status = dialog.querySelector("[data-lightbox-status]");
  const preloaded = new Set();

  let current = null;      // the tile link shown
  let opener = null;       // what had the focus when the lightbox opened
  let historyPushed = false;
  let loadingMore = false;
  let leavingFor = "";     // the photo page asked for, once the history entry is gone
  let leaveTimer = 0;

  // The tiles of the grid the current one is in (a page can hold several: a group selfie's
  // faces each have theirs), including those a "more" link added since.
  function tilesOf(link) {
    const grid = link.closest(".photo-grid");
    return grid ? Array.from(grid.querySelectorAll("a.photo-link[data-lightbox-src]")) : [link];
  }

  function neighbour(link, step) {
    const tiles = tilesOf(link);
    return tiles[tiles.indexOf(link) + step] || null;
  }

  function moreLinkOf(link) {
    const grid = link.closest(".photo-grid");
    return grid && grid.querySelector("a[data-lightbox-more]");
  }

  function preload(link) {
    if (!link || preloaded.has(link.dataset.lightboxSrc)) return;
    preloaded.add(link.dataset.lightboxSrc);
    const next = new Image();
    next.decoding = "async";
    next.src = link.dataset.lightboxSrc;
  }

  function show(link) {
    current = link;
    const thumbnail = link.querySelector("img");
    image.removeAttribute("width");
    image.removeAttribute("height");
    if (link.dataset.lightboxWidth) {
      image.width = Number(link.dataset.lightboxWidth);
      image.height = Number(link.dataset.lightboxHeight);
    }
    image.src = link.dataset.lightboxSrc;
    image.alt = thumbnail ? thumbnail.alt : "";
    title.textContent = link.dataset.lightboxTime || "";

    const tileReasons = link.closest(".photo-tile").querySelector(".reasons");
    reasons.replaceChildren(...(tileReasons ? Array.from(tileReasons.children, (item) => item.cloneNode(true)) : []));
    reasons.hidden = !tileReasons;
    const bibs = (link.dataset.lightboxBibs || "").split(",").filter(Boolean);
    bibsLine.querySelector(".bib").textContent = bibs.join(", ");
    bibsLine.hidden = bibs.length === 0;
    pageLink.setAttribute("href", link.getAttribute("href"));

    const previous = neighbour(link, -1);
    const next = neighbour(link, 1);
    previousButton.disabled = !previous;
    nextButton.disabled = !next && !moreLinkOf(link);
    status.textContent = image.alt;
    preload(previous);
    preload(next);
  }

  function open(link) {
    opener = link;
    show(link);
    dialog.showModal();
    dialog.querySelector("[data-lightbox-close]").focus();
    // The phone's back button closes the lightbox rather than leaving the page.
    history.pushState({ racephotoLightbox: true }, "");
    historyPushed = true;
  }

  function close() {
    if (dialog.open) dialog.close();
  }

  dialog.addEventListener("close", () => {
    image.removeAttribute("src");
    const back = current && document.contains(current) ? current : opener;
    current = null;
    if (back) back.focus();
    if (historyPushed) {
      historyPushed = false;
      history.back();
    }
  });

  window.addEventListener("popstate", () => {
    if (leavingFor) {
      window.clearTimeout(leaveTimer);
      window.location.assign(leavingFor);
      return;
    }
    if (!dialog.open) return;
    historyPushed = false;  // the browser went back already
    close();
  });

  // The photo page's link: drop the lightbox's history entry first, so that "back" from
  // the photo page comes to the gallery once, not to the same page twice.
  pageLink.addEventListener("click", (event) => {
    if (!historyPushed || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey
        || event.altKey) return;
    event.preventDefault();
    leavingFor = pageLink.href;
    close();  // goes back in history; popstate then opens the page
    leaveTimer = window.setTimeout(() => window.location.assign(leavingFor), 500);  // no popstate came
  });

  function go(step) {
    if (!current || loadingMore) return;
    const target = neighbour(current, step);
    if (target) {
      show(target);
      return;
    }
    const more = step > 0 && moreLinkOf(current);
    if (!more || !window.htmx) return;
    // The end of what is loaded: fetch the grid's next page in place, then go on.
    loadingMore = true;
    const from = current;
    const item = more.closest("li");
    window.htmx.ajax("GET", more.getAttribute("hx-get"), { target: item, swap: "outerHTML" })
      .then(() => {
        loadingMore = false;
        if (dialog.open && current === from) {
          const after = neighbour(from, 1);
          if (after) show(after); else show(from);
        }
      }, () => { loadingMore = false; });
  }

  previousButton.addEventListener("click", () => go(-1));
  nextButton.addEventListener("click", () => go(1));
  dialog.querySelector("[data-lightbox-close]").addEventListener("click", close);
  // A click on the backdrop (the dialog itself, outside its content) closes.
  dialog.addEventListener("click", (event) => { if (event.target === dialog) close(); });

  dialog.addEventListener("keydown", (event) => {
    if (event.key === "ArrowLeft" && plainKey(event)) { event.preventDefault(); go(-1); return; }
    if (event.key === "ArrowRight" && plainKey(event)) { event.preventDefault(); go(1); return; }
    if (event.key !== "Tab") return;
    // Keep the focus in the lightbox: the page under it is inert, but the browser's own
    // controls would otherwise come next in the tab order.
    const focusable = Array.from(dialog.querySelectorAll("a[href], button:not([disabled])"))
      .filter((element) => element.offsetParent !== null);
    if (!focusable.length) return;
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (event.shiftKey && document.activeElement === first) { event.preventDefault(); last.focus(); }
    else if (!event.shiftKey && document.activeElement === last) { event.preventDefault(); first.focus(); }
  });

  // Swipe: pointer events cover touch, pen and mouse; the figure only lets the browser
  // pan vertically (CSS touch-action), so a horizontal move reaches us.
  let swipeFrom = null;
  const figure = dialog.querySelector(".lightbox-figure");
  figure.addEventListener("pointerdown", (event) => {
    if (event.pointerType !== "mouse") swipeFrom = { x: event.clientX, y: event.clientY };
  });
  figure.addEventListener("pointercancel", () => { swipeFrom = null; });
  figure.addEventListener("pointerup", (event) => {
    if (!swipeFrom) return;
    const dx = event.clientX - swipeFrom.x;
    const dy = event.clientY - swipeFrom.y;
    swipeFrom = null;
    if (Math.abs(dx) >= SWIPE_PX && Math.abs(dx) > Math.abs(dy)) go(dx < 0 ? 1 : -1);
  });

  // One listener for every grid, tiles that htmx adds later included.
  document.addEventListener("click", (event) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey
        || event.shiftKey || event.altKey) return;
    const link = event.target instanceof Element && event.target.closest("a.photo-link[data-lightbox-src]");
    if (!link || dialog.contains(link)) return;
    event.preventDefault();
    open(link);
  });
})();
