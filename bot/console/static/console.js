// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";

  // Keep what is typed in text areas (and the simulator's box) across a session expiry.
  function keepDrafts() {
    // A page that rendered after a successful send clears its draft first.
    document.querySelectorAll("[data-draft-clear]").forEach(function (el) {
      try { sessionStorage.removeItem("nyala-draft:" + el.getAttribute("data-draft-clear")); } catch (e) {}
    });
    document.querySelectorAll("textarea[data-draft], input[data-draft]").forEach(function (field) {
      var key = "nyala-draft:" + field.getAttribute("data-draft");
      try {
        if (!field.value && sessionStorage.getItem(key)) field.value = sessionStorage.getItem(key);
        field.addEventListener("input", function () { sessionStorage.setItem(key, field.value); });
        if (field.form) field.form.addEventListener("submit", function () { sessionStorage.setItem(key + ":sent", "1"); });
      } catch (e) { /* storage disabled */ }
    });
  }

  // Ask before destructive actions.
  function confirmations() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  // The chat pages scroll to the newest message and refresh while open.
  function liveChat() {
    var chat = document.querySelector(".chat[data-refresh]");
    if (!chat) return;
    chat.scrollTop = chat.scrollHeight;
    var source = chat.getAttribute("data-refresh");
    var box = document.querySelector(".composer input[type=text]");
    if (box) box.focus();
    setInterval(function () {
      if (document.hidden) return;
      fetch(source, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) return;
          var stamp = chat.getAttribute("data-last");
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.querySelector(".chat");
          if (fresh && fresh.getAttribute("data-last") !== stamp) {
            chat.innerHTML = fresh.innerHTML;
            chat.setAttribute("data-last", fresh.getAttribute("data-last"));
            chat.scrollTop = chat.scrollHeight;
          }
        })
        .catch(function () {});
    }, 2500);
  }

  // A card whose table is wider than the screen scrolls sideways: let the keyboard reach it.
  function scrollableCards() {
    document.querySelectorAll(".card, .table-wrap").forEach(function (box) {
      if (box.scrollWidth <= box.clientWidth || box.hasAttribute("tabindex")) return;
      var heading = box.querySelector("h2, caption");
      box.setAttribute("tabindex", "0");
      box.setAttribute("role", "region");
      box.setAttribute("aria-label", heading ? heading.textContent.trim() : "Scrollable table");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    scrollableCards();
    keepDrafts();
    confirmations();
    liveChat();
  });
})();
