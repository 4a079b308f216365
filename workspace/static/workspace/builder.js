/* The journey builder: live preview as you type, preview width, send a test, placeholders,
   fields that only matter for some kinds of step, confirmations. The page works without it:
   forms post and the server renders the preview of what is saved. */
(function () {
  "use strict";

  // Confirm destructive forms (archive, remove a step).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  // Read-only preview picker: choosing a customer reloads the page for them.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // Desktop / phone width.
  var wrap = document.getElementById("frame-wrap");
  document.querySelectorAll(".width-toggle button").forEach(function (button) {
    button.addEventListener("click", function () {
      document.querySelectorAll(".width-toggle button").forEach(function (b) {
        b.setAttribute("aria-pressed", b === button ? "true" : "false");
      });
      wrap.classList.toggle("phone", button.dataset.width === "phone");
      wrap.classList.toggle("desktop", button.dataset.width !== "phone");
    });
  });

  var form = document.getElementById("step-form");
  if (!form) return;

  // Fields that belong to one kind of step or one kind of wait.
  function showDependent() {
    var kind = form.elements.kind ? form.elements.kind.value : "";
    var timing = form.elements.timing ? form.elements.timing.value : "";
    form.querySelectorAll("[data-show-kind]").forEach(function (el) {
      el.hidden = el.dataset.showKind.split(" ").indexOf(kind) < 0;
    });
    form.querySelectorAll("[data-show-timing]").forEach(function (el) {
      el.hidden = el.dataset.showTiming.split(" ").indexOf(timing) < 0;
    });
  }
  ["kind", "timing"].forEach(function (name) {
    if (form.elements[name]) form.elements[name].addEventListener("change", showDependent);
  });
  showDependent();

  // Unsaved changes: say so, and ask before leaving.
  var dirty = false;
  var dirtyNote = document.getElementById("dirty-note");
  form.addEventListener("input", function () { dirty = true; if (dirtyNote) dirtyNote.hidden = false; });
  form.addEventListener("submit", function () { dirty = false; });
  window.addEventListener("beforeunload", function (event) {
    if (dirty) { event.preventDefault(); event.returnValue = ""; }
  });
  // Activating (or pausing, duplicating…) acts on what is saved: offer to save the edits first.
  document.querySelectorAll("#journey-head form").forEach(function (other) {
    other.addEventListener("submit", function (event) {
      if (!dirty) return;
      event.preventDefault();
      event.stopImmediatePropagation();
      if (window.confirm("This step has unsaved changes, and the journey uses what is saved. Save them now? " +
                         "(Then choose the action again.)")) form.requestSubmit();
    }, true);
  });

  // Placeholders go in at the cursor of the last email field used.
  var lastField = form.elements.body;
  ["subject", "preheader", "body"].forEach(function (name) {
    if (form.elements[name]) form.elements[name].addEventListener("focus", function () { lastField = form.elements[name]; });
  });
  document.querySelectorAll("[data-insert]").forEach(function (button) {
    button.addEventListener("click", function () {
      if (!lastField) return;
      var text = button.dataset.insert, start = lastField.selectionStart, end = lastField.selectionEnd;
      lastField.setRangeText(text, start, end, "end");
      lastField.focus();
      lastField.dispatchEvent(new Event("input", { bubbles: true }));
    });
  });

  var pane = document.getElementById("preview-pane");
  if (!pane) return;
  var frame = document.getElementById("preview-frame");
  var status = document.getElementById("preview-status");
  var problems = document.getElementById("preview-problems");
  var customer = document.getElementById("preview-customer");
  var sequence = 0, timer = null;

  function payload() {
    var data = new FormData(form);
    if (customer) data.set("customer", customer.value);
    return data;
  }

  function post(url) {
    return fetch(url, { method: "POST", body: payload(), credentials: "same-origin",
                        headers: { "Accept": "application/json" } })
      .then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      });
  }

  function showProblems(list) {
    problems.textContent = "";
    form.querySelectorAll(".field.live-invalid").forEach(function (el) { el.classList.remove("live-invalid"); });
    (list || []).forEach(function (problem) {
      var li = document.createElement("li");
      li.textContent = problem.message;
      li.dataset.field = problem.field || "";
      problems.appendChild(li);
      var input = problem.field && form.elements[problem.field];
      if (input && input.closest) input.closest(".field").classList.add("live-invalid");
    });
  }

  function refresh() {
    var mine = ++sequence;
    status.textContent = "Updating the preview…";
    post(pane.dataset.previewUrl).then(function (result) {
      if (mine !== sequence) return; // a newer keystroke's answer is on its way
      if (!result.ok) { status.textContent = result.data.error || "The preview could not be rendered."; return; }
      var data = result.data;
      showProblems(data.problems);
      if (data.rendered) {
        frame.srcdoc = data.html;
        document.getElementById("preview-subject").textContent = data.subject;
        document.getElementById("preview-preheader").textContent = data.preheader;
        document.getElementById("preview-to").textContent = data.to;
        document.getElementById("preview-from").textContent = data.from;
        pane.classList.remove("stale");
        status.textContent = "Preview updated for " + data.customer + ".";
      } else {
        pane.classList.add("stale");
        status.textContent = "Showing the last version that rendered: fix the problem above.";
      }
    }).catch(function () {
      if (mine === sequence) status.textContent = "The preview is unavailable right now.";
    });
  }

  function later() { clearTimeout(timer); timer = setTimeout(refresh, 300); }
  ["subject", "preheader", "body", "signature"].forEach(function (name) {
    if (form.elements[name]) form.elements[name].addEventListener("input", later);
  });
  if (customer) customer.addEventListener("change", refresh);
  if (form.dataset.refresh) refresh();

  var test = document.getElementById("send-test");
  var result = document.getElementById("test-result");
  if (test) {
    test.addEventListener("click", function (event) {
      event.preventDefault();
      test.disabled = true;
      result.className = "";
      result.textContent = "Sending…";
      post(pane.dataset.testUrl).then(function (answer) {
        result.className = answer.ok ? "sent" : "error";
        result.textContent = answer.ok ? answer.data.message : answer.data.error;
      }).catch(function () {
        result.className = "error";
        result.textContent = "The test could not be sent right now.";
      }).then(function () { test.disabled = false; });
    });
  }
})();
