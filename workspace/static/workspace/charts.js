/* Draws the dashboards' charts with Chart.js (vendor/chartjs) from the JSON the page carries in
   #dashboard-charts: {canvas id: {type: "bar"|"line"|"interval", labels, series|estimates+intervals, unit}}.
   The tables beside each chart hold the same numbers, so nothing is lost without JavaScript. */
(function () {
  "use strict";
  var source = document.getElementById("dashboard-charts");
  if (!source || typeof Chart === "undefined") { return; }
  var specs = JSON.parse(source.textContent);
  var palette = ["#3b5bdb", "#2b8a3e", "#e67700", "#c2255c", "#1098ad", "#7048e8", "#5c940d", "#d9480f",
                 "#495057", "#0b7285", "#862e9c", "#a61e4d"];
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = "#667085";
  Chart.defaults.animation = false;  // drawn at once: screenshots and slow machines see the final picture

  function format(unit, currency) {
    return function (value) {
      if (value === null || value === undefined) { return "—"; }
      if (unit === "percent") { return value + "%"; }
      if (unit === "points") { return (value > 0 ? "+" : "") + value + " pts"; }
      if (unit === "money") { return Number(value).toFixed(0) + " " + (currency || ""); }
      return Number(value).toLocaleString();
    };
  }

  // A vertical line at 0 on the interval chart: left of it the journey did harm, right of it good.
  var zeroLine = {
    id: "zeroLine",
    afterDatasetsDraw: function (chart) {
      if (!chart.options.plugins.zeroLine) { return; }
      var x = chart.scales.x.getPixelForValue(0), area = chart.chartArea, ctx = chart.ctx;
      ctx.save();
      ctx.strokeStyle = "#1f2328";
      ctx.setLineDash([4, 4]);
      ctx.beginPath(); ctx.moveTo(x, area.top); ctx.lineTo(x, area.bottom); ctx.stroke();
      ctx.restore();
    }
  };

  // An interval chart's spec may name its own axis and unit (an A/B test's arm rates, in percent); by default
  // it is a lift in percentage points around a line at 0.
  function intervalConfig(spec) {
    var unit = spec.unit || "points", what = spec.what || "lift";
    var colours = spec.enough.map(function (ok) { return ok ? "rgba(59, 91, 219, 0.35)" : "rgba(173, 181, 189, 0.45)"; });
    return {
      type: "bar",
      data: {
        labels: spec.labels,
        datasets: [
          {label: "95% interval", data: spec.intervals, backgroundColor: colours, borderColor: colours,
           barPercentage: 0.35, categoryPercentage: 1},
          {type: "scatter", label: "Estimate", data: spec.estimates.map(function (v, i) { return {x: v, y: spec.labels[i]}; }),
           backgroundColor: "#1f2328", pointRadius: 5, pointStyle: "rectRot"}
        ]
      },
      options: {
        indexAxis: "y", responsive: true, maintainAspectRatio: false,
        scales: {x: {title: {display: true, text: spec.axis || "Lift in conversion, percentage points"},
                     ticks: {callback: format(unit)}}, y: {type: "category"}},
        plugins: {zeroLine: spec.zero !== false, legend: {display: false},
                  tooltip: {callbacks: {label: function (c) {
                    var i = c.dataIndex;
                    return what + " " + format(unit)(spec.estimates[i]) + " (" + format(unit)(spec.intervals[i][0]) +
                           " to " + format(unit)(spec.intervals[i][1]) + ")";
                  }}}}
      },
      plugins: [zeroLine]
    };
  }

  function seriesConfig(spec) {
    var line = spec.type === "line";
    var datasets = spec.series.map(function (s, i) {
      var colour = palette[i % palette.length];
      return {label: s.label, data: s.data, backgroundColor: line ? colour : colour + "cc", borderColor: colour,
              borderWidth: line ? 2 : 0, spanGaps: true, pointRadius: line ? 2 : 0, tension: 0.2};
    });
    var y = {beginAtZero: spec.min === undefined, ticks: {callback: format(spec.unit, spec.currency)}};
    if (spec.min !== undefined) { y.min = spec.min; }
    if (spec.max !== undefined) { y.max = spec.max; }
    return {
      type: line ? "line" : "bar",
      data: {labels: spec.labels, datasets: datasets},
      options: {responsive: true, maintainAspectRatio: false, scales: {y: y},
                plugins: {legend: {display: datasets.length > 1, position: "bottom"},
                          tooltip: {callbacks: {label: function (c) {
                            return c.dataset.label + ": " + format(spec.unit, spec.currency)(c.raw);
                          }}}}}
    };
  }

  Object.keys(specs).forEach(function (id) {
    var canvas = document.getElementById(id), spec = specs[id];
    if (!canvas) { return; }
    var empty = spec.type === "interval" ? !spec.labels.length
      : !spec.labels.length || spec.series.every(function (s) { return s.data.every(function (v) { return v === null; }); });
    if (empty) {
      canvas.parentNode.classList.add("chart-empty");
      canvas.parentNode.setAttribute("data-empty", "Nothing to draw for this period.");
      return;
    }
    if (spec.type === "interval") { canvas.parentNode.style.height = Math.max(140, 60 + 44 * spec.labels.length) + "px"; }
    canvas.chart = new Chart(canvas, spec.type === "interval" ? intervalConfig(spec) : seriesConfig(spec));
    canvas.setAttribute("data-drawn", "yes");
  });
}());
