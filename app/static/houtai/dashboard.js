/* Draws every dashboard panel from the JSON embedded beside its canvas (no network needed). */
(function () {
  var palette = ["#3c8dbc", "#00a65a", "#f39c12", "#dd4b39", "#605ca8", "#39cccc"];
  document.querySelectorAll("script[id^='data-']").forEach(function (node) {
    var key = node.id.substring(5);
    var spec = JSON.parse(node.textContent);
    var canvas = document.getElementById("chart-" + key);
    if (!canvas || typeof Chart === "undefined") { return; }
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
      options: { plugins: { legend: { display: spec.chart === "doughnut" } },
                 animation: false, responsive: true }
    });
  });
})();
