/* Draws every dashboard panel from the JSON embedded beside its canvas (no network needed). */
(function () {
  var palette = ["#3c8dbc", "#00a65a", "#f39c12", "#dd4b39", "#605ca8", "#39cccc"];
  document.querySelectorAll("script[id^='data-']").forEach(function (node) {
    var key = node.id.substring(5);
    var spec = JSON.parse(node.textContent);
    var canvas = document.getElementById("chart-" + key);
    if (!canvas || typeof Chart === "undefined") { return; }
    var total = spec.values.reduce(function (a, b) { return a + Number(b); }, 0);
    if (spec.chart === "doughnut" && total === 0) {
      var empty = document.createElement("p");
      empty.className = "text-muted text-center";
      empty.textContent = node.getAttribute("data-empty") || "0";
      canvas.replaceWith(empty);
      return;
    }
    new Chart(canvas, {
      type: spec.chart,
      data: {
        labels: spec.labels,
        datasets: [{
          data: spec.values,
          backgroundColor: spec.chart === "line" ? palette[0] : palette,
          borderColor: palette[0],
          fill: false
        }]
      },
      options: {
        plugins: { legend: { display: spec.chart === "doughnut" } },
        scales: spec.chart === "doughnut" ? {} : { y: { beginAtZero: true, ticks: { precision: 0 } } },
        animation: false,
        responsive: true
      }
    });
  });
})();
