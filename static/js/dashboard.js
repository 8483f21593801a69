// Dashboard charts: data comes from the json_script block "dashboard-data" (no inline script).
(function () {
  "use strict";
  const PALETTE = ["#1f5fbf", "#d9822b", "#2e9d5b", "#b3261e", "#7b4fc9", "#0f8b8d", "#c24d8c", "#6b7280"];
  function color(i) { return PALETTE[i % PALETTE.length]; }
  function anyData(series) { return series.some((values) => values.some((v) => v)); }
  // An empty chart says so instead of drawing empty axes.
  function chart(id, hasData, config) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    if (!hasData) {
      const note = document.createElement("p");
      note.className = "muted no-data";
      note.textContent = "No data yet.";
      canvas.replaceWith(note);
      return;
    }
    new Chart(canvas, config);
  }

  function draw() {
    const node = document.getElementById("dashboard-data");
    if (!node || typeof Chart === "undefined") return;
    const data = JSON.parse(node.textContent);
    Chart.defaults.animation = false;
    Chart.defaults.maintainAspectRatio = false;

    const dist = data.distribution;
    chart("chart-distribution", anyData([dist.labels, dist.predictions]), {
      type: "bar",
      data: {
        labels: dist.classes,
        datasets: [
          { label: "Human labels", data: dist.labels, backgroundColor: color(0) },
          { label: "Model predictions", data: dist.predictions, backgroundColor: color(1) },
        ],
      },
    });

    const hist = data.histogram;
    const binLabels = hist.edges.slice(0, -1).map((lo, i) => lo.toFixed(1) + "–" + hist.edges[i + 1].toFixed(1));
    chart("chart-histogram", anyData(hist.counts), {
      type: "bar",
      data: {
        labels: binLabels,
        datasets: hist.classes.map((name, i) => ({ label: name, data: hist.counts[i], backgroundColor: color(i) })),
      },
      options: { scales: { x: { stacked: true, title: { display: true, text: "confidence" } }, y: { stacked: true } } },
    });

    const thr = data.throughput;
    chart("chart-throughput", anyData(thr.reviewers.map((r) => r.counts)), {
      type: "bar",
      data: {
        labels: thr.days.map((d) => d.slice(5)),
        datasets: thr.reviewers.map((r, i) => ({ label: r.name, data: r.counts, backgroundColor: color(i) })),
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true, ticks: { precision: 0 } } } },
    });

    const met = data.metrics;
    // One version is one point: draw it big enough to see.
    const metPoint = met.versions.length === 1 ? 6 : 3;
    chart("chart-metrics", anyData(Object.values(met.series)), {
      type: "line",
      data: {
        labels: met.versions,
        datasets: Object.keys(met.series).map((name, i) => ({
          label: met.names[name] || name, data: met.series[name], borderColor: color(i), backgroundColor: color(i), spanGaps: true, pointRadius: metPoint,
        })),
      },
      options: { scales: { y: { suggestedMin: 0, suggestedMax: 1 } } },
    });

    // Learning curve: validation macro-F1 and online reviewer agreement (with its interval).
    const learn = data.learning;
    const learnCanvas = document.getElementById("chart-learning");
    if (learn && learnCanvas) {
      new Chart(learnCanvas, {
        type: "line",
        data: {
          labels: learn.versions,
          datasets: [
            { label: "validation macro-F1", data: learn.macro_f1, borderColor: color(0), backgroundColor: color(0), spanGaps: true },
            { label: "reviewer agreement", data: learn.agreement, borderColor: color(2), backgroundColor: color(2), spanGaps: true },
            { label: "agreement 95% low", data: learn.agreement_low, borderColor: color(2), borderDash: [4, 4], pointRadius: 0, spanGaps: true },
            { label: "agreement 95% high", data: learn.agreement_high, borderColor: color(2), borderDash: [4, 4], pointRadius: 0, spanGaps: true },
          ],
        },
        options: {
          scales: { y: { suggestedMin: 0, suggestedMax: 1 } },
          plugins: { tooltip: { callbacks: { afterLabel: (ctx) => ctx.datasetIndex === 1 ? learn.reviews[ctx.dataIndex] + " reviews" : "" } } },
        },
      });
    }
  }
  document.addEventListener("DOMContentLoaded", draw);
})();
